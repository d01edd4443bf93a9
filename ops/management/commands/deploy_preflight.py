"""`deploy_preflight`: the deploy checks `bin/backoffice web|worker|beat` runs before starting.

`manage.py check --deploy --database default --fail-level WARNING`: the production rules (`ops/checks.py`,
the same as `verify_prod_env` without waivers), Django's security checks, and the database checks (no
demo account, `accounts/checks.py`). Any failure exits 1 with the reasons on stderr, so the process never
serves. Skipped only where ENVIRONMENT is development or test (a developer's machine, the test suite);
the production settings fix ENVIRONMENT=production, so production cannot skip it.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, SystemCheckError

SKIPPED_ENVIRONMENTS = ("development", "test")


class Command(BaseCommand):
    help = "Run the deploy checks (check --deploy --database default --fail-level WARNING); exit 1 on any failure."
    requires_system_checks: list[str] = []  # it runs them itself, with the deploy and database checks

    def handle(self, *args: Any, **options: Any) -> None:
        environment = str(settings.ENVIRONMENT)
        if environment in SKIPPED_ENVIRONMENTS:
            self.stdout.write(f"deploy_preflight: skipped (ENVIRONMENT={environment})")
            return
        try:
            call_command(
                "check",
                deploy=True,
                fail_level="WARNING",
                databases=["default"],
                stdout=self.stdout,
                stderr=self.stderr,
            )
        except SystemCheckError as exc:
            raise CommandError(
                f"deploy_preflight: FAIL (ENVIRONMENT={environment}); refusing to start.\n{exc}"
            ) from None
        self.stdout.write(f"deploy_preflight: PASS (ENVIRONMENT={environment})")
