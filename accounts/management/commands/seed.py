"""`seed`: create players (`--users N`) or the demo data (`--demo`), idempotently.

The demo data: an admin, a finance and a support operator (their credentials are printed) and a few
players with balances. Running it again changes nothing. Refused where BOOTSTRAP_ENABLED is off
(production).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from accounts.models import User
from accounts.roles import ADMIN, FINANCE, SUPPORT, ensure_operator_roles
from ledger.services import operator_credit
from ops.actors import SEED

DEMO_OPERATORS = [
    ("admin@example.com", "admin-demo-pass", ADMIN, True),
    ("finance@example.com", "finance-demo-pass", FINANCE, False),
    ("finance2@example.com", "finance2-demo-pass", FINANCE, False),
    ("support@example.com", "support-demo-pass", SUPPORT, False),
]
DEMO_PLAYERS = [
    ("alice@example.com", 250_000_000, 10_000),
    ("bob@example.com", 100_000_000, 5_000),
    ("carol@example.com", 50_000_000, 0),
]
PLAYER_PASSWORD = "player-demo-pass"


class Command(BaseCommand):
    help = "Create players (--users N) or the demo operators and players (--demo); idempotent."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--users", type=int, default=0, help="create N more players")
        parser.add_argument("--demo", action="store_true", help="demo operators and players with balances")

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.BOOTSTRAP_ENABLED:
            raise CommandError("seed is disabled here (BOOTSTRAP_ENABLED is off, as in production).")
        if options["users"] < 0:
            raise CommandError("--users must be zero or more.")
        if not options["demo"] and not options["users"]:
            raise CommandError("Say what to create: --users N and/or --demo.")
        if options["demo"]:
            self._demo()
        if options["users"]:
            self._players(options["users"])

    @transaction.atomic
    def _demo(self) -> None:
        ensure_operator_roles()
        self.stdout.write("demo operators (admin at /admin/):")
        for email, password, role, superuser in DEMO_OPERATORS:
            user = User.objects.filter(email=email).first()
            if user is None:
                user = User.objects.create_user(email, password, is_staff=True, is_superuser=superuser)
            elif not user.is_staff:
                raise CommandError(f"{email} exists as a player; staff and players are never the same account.")
            user.groups.add(Group.objects.get(name=role))
            self.stdout.write(f"  {role:<8} {email} / {password}")
        self.stdout.write("demo players (API token login at POST /v1/auth/login):")
        for email, usdc_u, usd_u in DEMO_PLAYERS:
            user = User.objects.filter(email=email).first() or User.objects.create_user(email, PLAYER_PASSWORD)
            if user.is_staff or user.is_superuser:
                raise CommandError(f"{email} is an operator account; demo balances go to players only.")
            for currency, amount_u in (("USDC", usdc_u), ("USD", usd_u)):
                if amount_u:
                    operator_credit(
                        user=user,
                        amount_u=amount_u,
                        currency=currency,
                        actor=SEED,
                        reference=f"seed:demo:{email}:{currency}",
                        reason="demo balance",
                    )
            self.stdout.write(f"  player   {email} / {PLAYER_PASSWORD}  ({usdc_u} micro USDC, {usd_u} US cents)")

    def _players(self, count: int) -> None:
        start = User.objects.filter(email__startswith="seed-player").count()
        created = []
        for n in range(start, start + count):
            email = f"seed-player{n}@example.com"
            User.objects.get_or_create(email=email)
            created.append(email)
        self.stdout.write(f"created {len(created)} player(s): {', '.join(created[:5])}{' ...' if count > 5 else ''}")
