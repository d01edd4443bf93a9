"""`seed`: create players (`--users N`), the demo data (`--demo`), or named accounts, idempotently.

`--users N` players log in at `POST /v1/auth/login` like any player: in development with the demo players'
password (printed, like the demo's); elsewhere with the password in the environment variable `--password-env`
names (never printed), and without one they are refused (nothing created). Production refuses `seed` entirely.

The demo data: an admin, a finance and a support operator (their credentials are printed) and a few
players with balances. Running it again changes nothing. Refused where BOOTSTRAP_ENABLED is off
(production); `--demo` is refused outside ENVIRONMENT=development (`accounts/demo.py`).

`--operator EMAIL [--role ROLE]` and `--player EMAIL` create one operator and/or one player (no balance)
whose password is read from the environment variable named by `--password-env` (never the command
line) and must pass the password rules: `make prod-local` creates its accounts this way.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from accounts.demo import (
    DEMO_ENVIRONMENT,
    DEMO_OPERATORS,
    DEMO_PLAYERS,
    PLAYER_PASSWORD,
    SEED_PLAYER_PREFIX,
    demo_allowed,
)
from accounts.models import User
from accounts.roles import FINANCE, ROLES, ensure_operator_roles
from ledger.services import operator_credit
from ops.actors import SEED


class Command(BaseCommand):
    help = "Create players (--users N) or the demo operators and players (--demo); idempotent."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--users",
            type=int,
            default=0,
            help=f"create N more players; password: --password-env, or in development {PLAYER_PASSWORD!r} (printed)",
        )
        parser.add_argument("--demo", action="store_true", help="demo operators and players with balances")
        parser.add_argument("--operator", help="create this operator (with --role and --password-env)")
        parser.add_argument("--role", default=FINANCE, choices=ROLES, help="the --operator's role (default finance)")
        parser.add_argument("--player", help="create this player, without a balance (with --password-env)")
        parser.add_argument("--password-env", help="the environment variable holding the new accounts' password")

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.BOOTSTRAP_ENABLED:
            raise CommandError("seed is disabled here (BOOTSTRAP_ENABLED is off, as in production).")
        if options["users"] < 0:
            raise CommandError("--users must be zero or more.")
        named = [e for e in (options["operator"], options["player"]) if e]
        if not options["demo"] and not options["users"] and not named:
            raise CommandError("Say what to create: --users N, --demo, --operator EMAIL and/or --player EMAIL.")
        if options["demo"] and not demo_allowed():
            raise CommandError(
                f"seed --demo is refused here (ENVIRONMENT={settings.ENVIRONMENT}); demo accounts and their "
                f"passwords exist only where ENVIRONMENT={DEMO_ENVIRONMENT}."
            )
        password = self._named_password(options) if named or options["password_env"] else ""
        if options["users"] and not password and not demo_allowed():
            raise CommandError(
                f"seed --users outside development needs --password-env NAME (the players' password, read from "
                f"that environment variable); ENVIRONMENT={settings.ENVIRONMENT}. Nothing was created."
            )
        if options["demo"]:
            self._demo()
        if options["users"]:
            self._players(options["users"], password)
        if named:
            self._named(operator=options["operator"], role=options["role"], player=options["player"], password=password)

    def _named_password(self, options: dict[str, Any]) -> str:
        import os

        from django.contrib.auth.password_validation import validate_password
        from django.core.exceptions import ValidationError

        name = options["password_env"]
        if not name:
            raise CommandError("--operator/--player need --password-env NAME (the password is never an argument).")
        password = os.environ.get(name, "")
        if not password:
            raise CommandError(f"The environment variable {name} is empty or not set.")
        checked = [(options["operator"], True), (options["player"], False)]
        if options["users"]:
            checked.append((f"{SEED_PLAYER_PREFIX}@example.com", False))
        for email, staff in checked:
            if email:
                try:
                    validate_password(password, User(email=email.strip().lower(), is_staff=staff))
                except ValidationError as exc:
                    raise CommandError(f"The password in {name} is refused: {' '.join(exc.messages)}") from None
        return password

    @transaction.atomic
    def _named(self, *, operator: str | None, role: str, player: str | None, password: str) -> None:
        ensure_operator_roles()
        if operator:
            email = operator.strip().lower()
            user = User.objects.filter(email=email).first()
            if user is None:
                user = User.objects.create_user(email, password, is_staff=True)
            elif not user.is_staff:
                raise CommandError(f"{email} exists as a player; staff and players are never the same account.")
            else:
                user.set_password(password)
                user.save(update_fields=["password"])
            user.groups.add(Group.objects.get(name=role))
            self.stdout.write(f"operator {email} ({role})")
        if player:
            email = player.strip().lower()
            user = User.objects.filter(email=email).first()
            if user is None:
                user = User.objects.create_user(email, password)
            elif user.is_staff or user.is_superuser:
                raise CommandError(f"{email} is an operator account; staff and players are never the same account.")
            else:
                user.set_password(password)
                user.save(update_fields=["password"])
            self.stdout.write(f"player {email}")

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

    @transaction.atomic
    def _players(self, count: int, password: str) -> None:
        """N new players who can log in: with `password` (from --password-env), or in development the demo's."""
        shown = "the password in --password-env"
        if not password:
            password, shown = PLAYER_PASSWORD, PLAYER_PASSWORD  # development only (checked by the caller)
        n = User.objects.filter(email__startswith=SEED_PLAYER_PREFIX).count()
        created: list[str] = []
        while len(created) < count:
            email = f"{SEED_PLAYER_PREFIX}{n}@example.com"
            n += 1
            if User.objects.filter(email=email).exists():  # numbers left out of order: the next free one
                continue
            User.objects.create_user(email, password)
            created.append(email)
        self.stdout.write(
            f"created {len(created)} player(s): {', '.join(created[:5])}{' ...' if count > 5 else ''} "
            f"(password: {shown}; API token login at POST /v1/auth/login)"
        )
