"""`invalidate_sessions`: log out every session and API token, or one user's (after a key leak)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from accounts.services import sessions_invalidate
from ops.cli import operator_from_option, user_by_email


class Command(BaseCommand):
    help = "Log out every admin session and API token, or only one user's (--user EMAIL)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--user", help="only this user's sessions and tokens")
        parser.add_argument("--reason", default="forced logout", help="recorded in the audit log")
        parser.add_argument("--operator", help="the operator's email (recorded as the actor)")

    def handle(self, *args: Any, **options: Any) -> None:
        user = user_by_email(options["user"]) if options["user"] else None
        counts = sessions_invalidate(
            user=user, acting_user=operator_from_option(options["operator"]), reason=options["reason"]
        )
        who = user.email if user else "all users"
        self.stdout.write(f"logged out {who}: {counts['sessions']} session(s), {counts['tokens']} token(s) revoked")
