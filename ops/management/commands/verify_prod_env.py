"""`verify_prod_env`: is this configuration fit for production? Exit 1 on any FAIL."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from ops.prod_env import CHECKS, verify_prod_env


class Command(BaseCommand):
    help = "Check the production configuration: debug, secrets, PSP keys, CORS, simulation, waivers."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--json", action="store_true")

    def handle(self, *args: Any, **options: Any) -> None:
        results = verify_prod_env()
        failed = [r for r in results if r.status == "FAIL"]
        if options["json"]:
            self.stdout.write(
                json.dumps({"result": "FAIL" if failed else "PASS", "checks": [r.__dict__ for r in results]})
            )
        else:
            for result in results:
                self.stdout.write(result.line())
        if failed:
            raise CommandError(f"verify_prod_env: FAIL ({len(failed)} of {len(CHECKS)} checks failed)")
        self.stdout.write(f"verify_prod_env: PASS ({len(results)} checks)")
