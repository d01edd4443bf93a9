"""`unlock_login`: lift the login lockout of an account (all addresses, or one), audited."""

from __future__ import annotations

import ipaddress
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from accounts.login_protection import account_failures
from accounts.services import login_unlock
from ops.cli import operator_from_option


class Command(BaseCommand):
    help = "Lift the login lockout (django-axes) of an account, from every address or from --ip only."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("email", help="the locked-out account's email")
        parser.add_argument("--ip", help="only the lockout from this client address")
        parser.add_argument("--reason", required=True, help="recorded in the audit log")
        parser.add_argument("--operator", help="the operator's email (recorded as the actor)")

    def handle(self, *args: Any, **options: Any) -> None:
        if not options["reason"].strip():
            raise CommandError("--reason is required.")
        if options["ip"]:
            try:
                ipaddress.ip_address(options["ip"])
            except ValueError:
                raise CommandError(f"Not an IP address: {options['ip']!r}.") from None
        count = login_unlock(
            username=options["email"],
            ip_address=options["ip"],
            acting_user=operator_from_option(options["operator"]),
            reason=options["reason"],
        )
        where = f"from {options['ip']}" if options["ip"] else "from every address"
        email = options["email"].strip().lower()
        self.stdout.write(f"unlocked {email} {where}: {count} lockout record(s) removed")
        remaining = account_failures(email)
        if remaining >= int(settings.LOGIN_ACCOUNT_FAILURE_LIMIT):
            self.stdout.write(
                f"still locked from every address: {remaining} failed logins from other addresses "
                f"(LOGIN_ACCOUNT_FAILURE_LIMIT {settings.LOGIN_ACCOUNT_FAILURE_LIMIT}); run without --ip to lift it"
            )
