"""`demo_credentials`: print the demo accounts `seed --demo` created, with their passwords and the local URLs.

The demo passwords are fixed in `accounts/demo.py` (they exist only where ENVIRONMENT=development, and every
other environment refuses them), so nothing secret is stored to print them again: the command lists the demo
accounts found in the database and says when one's password no longer is the demo one. Refused outside
development, with one line and a non-zero exit. `make run` prints the same once its processes are up.
"""

from __future__ import annotations

import os
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from accounts.demo import DEMO_ENVIRONMENT, DEMO_OPERATORS, DEMO_PLAYERS, PLAYER_PASSWORD, demo_allowed
from accounts.models import User
from ledger.currencies import get_currency
from ledger.models import Account


class Command(BaseCommand):
    help = "Print the demo operators' and players' credentials (development only) and the local URLs."

    def handle(self, *args: Any, **options: Any) -> None:
        if not demo_allowed():
            raise CommandError(
                f"demo_credentials is refused here (ENVIRONMENT={settings.ENVIRONMENT}); demo accounts exist "
                f"only where ENVIRONMENT={DEMO_ENVIRONMENT}."
            )
        users = {u.email: u for u in User.objects.filter(email__in=[e for e, *_ in DEMO_OPERATORS + DEMO_PLAYERS])}
        if not users:
            raise CommandError("No demo account in this database; create them with: python manage.py seed --demo")
        self.stdout.write("demo operators (admin at /admin/, or a token from POST /v1/auth/login):")
        for email, password, role, _ in DEMO_OPERATORS:
            self.stdout.write(f"  {role:<8} {self._credential(users.get(email), email, password)}")
        self.stdout.write("demo players (a token from POST /v1/auth/login):")
        for email, *_ in DEMO_PLAYERS:
            user = users.get(email)
            line = self._credential(user, email, PLAYER_PASSWORD)
            self.stdout.write(f"  player   {line}{self._balances(user)}")
        self._urls()

    def _credential(self, user: User | None, email: str, password: str) -> str:
        """`email / password`, or why that password would not log in (account missing or password changed)."""
        if user is None:
            return f"{email}  (not in this database; run seed --demo)"
        if not user.check_password(password):
            return f"{email}  (password changed since the seed; not shown)"
        return f"{email} / {password}"

    def _balances(self, user: User | None) -> str:
        """The player's available balances, in major units, as a reminder of what the loop starts from."""
        if user is None:
            return ""
        accounts = Account.objects.filter(owner=user, kind=Account.Kind.USER_AVAILABLE).order_by("currency")
        shown = [get_currency(a.currency).format(a.balance_u) for a in accounts]
        return f"  ({', '.join(shown)})" if shown else ""

    def _urls(self) -> None:
        """Where `make run` serves (HOST, PORT and STUB_PORT as it was started with, else the defaults)."""
        host, port = os.environ.get("HOST", "127.0.0.1"), os.environ.get("PORT", "8000")
        stub_port = os.environ.get("STUB_PORT", "12111")
        base = f"http://{host}:{port}"
        self.stdout.write(
            f"back office {base}: admin and console {base}/admin/, API docs {base}/v1/docs, health {base}/health/ready\n"
            f"PSP stub http://127.0.0.1:{stub_port}"
        )
