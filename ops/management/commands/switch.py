"""`switch NAME on|off --reason R`: maintenance mode, payout freeze, betting pause (audited)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from ops.cli import operator_from_option, refusals_as_command_errors
from ops.models import Switch
from ops.switches import switch_set


class Command(BaseCommand):
    help = "Show the switches, or turn one on or off with a reason (recorded in the audit log)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("name", nargs="?", help=f"one of: {', '.join(Switch.Name.values)}")
        parser.add_argument("state", nargs="?", choices=["on", "off"])
        parser.add_argument("--reason", default="")
        parser.add_argument("--operator", help="the operator's email (recorded as the actor)")

    def handle(self, *args: Any, **options: Any) -> None:
        if not options["name"]:
            current = {s.name: s for s in Switch.objects.all()}
            for name in Switch.Name.values:
                s = current.get(name)
                state = "on " if s and s.on else "off"
                self.stdout.write(f"{name:<18} {state} {s.reason if s and s.on else ''}".rstrip())
            return
        if not options["state"]:
            raise CommandError("Say on or off.")
        if not options["reason"].strip():
            raise CommandError("--reason is required: say why, it goes in the audit log.")
        with refusals_as_command_errors():
            switch = switch_set(
                name=options["name"],
                on=options["state"] == "on",
                reason=options["reason"],
                actor=operator_from_option(options["operator"]),
            )
        self.stdout.write(f"{switch.name} is now {'on' if switch.on else 'off'} ({switch.reason})")
