"""`go_live_smoke --base-url URL`: migrations applied, API health 200, admin login, auth, payouts router.

The cutover runbook's T-15 acceptance: "Migrations OK, API Health 200, Login OK, Payouts Router
reachable". Prints PASS/FAIL per step and exits 1 on any FAIL.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import requests
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import connection
from django.db.migrations.executor import MigrationExecutor


class Command(BaseCommand):
    help = "Post-deploy smoke test against a running server."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--base-url", default="http://127.0.0.1:8000")
        parser.add_argument("--email", help="an account to log in with (optional)")
        parser.add_argument("--password", default="")
        parser.add_argument("--timeout", type=float, default=10.0)

    def handle(self, *args: Any, **options: Any) -> None:
        base = options["base_url"].rstrip("/")
        self.timeout = options["timeout"]
        steps: list[tuple[str, Callable[[], str]]] = [
            ("migrations applied", self._migrations),
            ("API health 200", lambda: self._expect("GET", f"{base}/api/health", 200)),
            ("admin login page", lambda: self._expect("GET", f"{base}/admin/login/", 200)),
            ("auth router", lambda: self._login(base, options["email"], options["password"])),
            ("payouts router reachable", lambda: self._expect("GET", f"{base}/v1/payouts/manual-review", 401, 403)),
            ("withdrawals router reachable", lambda: self._expect("GET", f"{base}/v1/withdrawals", 401, 403)),
            ("metrics", lambda: self._expect("GET", f"{base}/metrics", 200, headers=self._metrics_auth())),
        ]
        failed = 0
        for name, step in steps:
            try:
                detail = step()
                self.stdout.write(f"PASS {name}: {detail}")
            except Exception as exc:
                failed += 1
                self.stdout.write(f"FAIL {name}: {exc}")
        if failed:
            raise CommandError(f"go_live_smoke: FAIL ({failed} of {len(steps)} steps failed)")
        self.stdout.write(f"go_live_smoke: PASS ({len(steps)} steps)")

    def _migrations(self) -> str:
        executor = MigrationExecutor(connection)
        plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
        if plan:
            raise RuntimeError(f"{len(plan)} migration(s) not applied: {plan[0][0]}")
        return "no unapplied migrations"

    def _metrics_auth(self) -> dict[str, str]:
        """Scrape as Prometheus does: with the bearer token when one is configured (metrics are private)."""
        token = settings.METRICS_TOKEN
        return {"Authorization": f"Bearer {token}"} if token else {}

    def _expect(self, method: str, url: str, *statuses: int, headers: dict[str, str] | None = None) -> str:
        response = requests.request(method, url, timeout=self.timeout, headers=headers or {})
        if response.status_code not in statuses:
            raise RuntimeError(f"{method} {url} answered {response.status_code}, expected {statuses}")
        return f"{method} {url} -> {response.status_code}"

    def _login(self, base: str, email: str | None, password: str) -> str:
        if not email:
            response = requests.post(
                f"{base}/v1/auth/login", json={"email": "smoke@invalid.example", "password": "x"}, timeout=self.timeout
            )
            if response.status_code != 401 or response.headers.get("Content-Type") != "application/problem+json":
                raise RuntimeError(f"login with bad credentials answered {response.status_code}")
            return "bad credentials refused with 401 problem+json"
        response = requests.post(
            f"{base}/v1/auth/login", json={"email": email, "password": password}, timeout=self.timeout
        )
        if response.status_code != 200:
            raise RuntimeError(f"login as {email} answered {response.status_code}")
        token = response.json()["token"]
        requests.post(f"{base}/v1/auth/logout", headers={"Authorization": f"Token {token}"}, timeout=self.timeout)
        return f"logged in and out as {email}"
