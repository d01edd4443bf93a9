"""`setup_db_roles`: create the application database role and grant it exactly its privileges (idempotent).

Run as the owner role (the one that migrates), after every `migrate`: `bin/backoffice migrate` does.
"""

from __future__ import annotations

import os
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from ops.db_roles import DatabaseRoleError, app_role, setup_db_roles


class Command(BaseCommand):
    help = (
        "Create the application role (DB_APP_ROLE, password from DB_APP_PASSWORD if set) and grant it its "
        "privileges on every table, sequence and function; run as the owner after every migrate."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--role", default=None, help="the application role (default: settings.DB_APP_ROLE)")

    def handle(self, *args: Any, **options: Any) -> None:
        role = options["role"] or app_role()
        try:
            lines = setup_db_roles(role=role, password=os.environ.get("DB_APP_PASSWORD") or None)
        except DatabaseRoleError as exc:
            raise CommandError(f"setup_db_roles: {exc}") from None
        for line in lines:
            self.stdout.write(f"setup_db_roles: {line}")
