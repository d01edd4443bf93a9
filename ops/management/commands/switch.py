"""`switch NAME on|off --reason R`: maintenance mode, payout freeze, betting pause (audited).

Turning a switch on is one operator (the emergency stop). A switch a failed ledger invariant turned on
(`payout_freeze` after a breach found by the reconciliation run) stays on until two operators clear it:
`switch payout_freeze clear --reason R --operator a@` proposes, `switch --approve ID --reason R --operator b@`
(a different operator, with their own reason) turns it off; `switch --reject ID --reason R --operator b@` drops the proposal. A plain
`off` on such a switch is refused.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from ops.cli import operator_by_email, operator_from_option, proposal_decide, refusals_as_command_errors
from ops.models import Switch
from ops.switches import CLEAR_KIND, switch_clear_propose, switch_set


class Command(BaseCommand):
    help = "Show the switches, or turn one on or off with a reason (recorded in the audit log)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("name", nargs="?", help=f"one of: {', '.join(Switch.Name.values)}")
        parser.add_argument(
            "state", nargs="?", choices=["on", "off", "clear"], help="clear: propose clearing an automatic switch"
        )
        parser.add_argument("--reason", default="", help="why (required; kept in the audit log)")
        parser.add_argument("--operator", help="the operator's email (recorded as the actor)")
        parser.add_argument("--approve", type=int, metavar="ID", help="approve another operator's clear proposal")
        parser.add_argument("--reject", type=int, metavar="ID", help="reject a clear proposal (with --reason)")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["approve"] is not None or options["reject"] is not None:
            proposal, operator = proposal_decide(
                approve=options["approve"],
                reject=options["reject"],
                kind=CLEAR_KIND,
                operator_email=options["operator"],
                reason=options["reason"],
            )
            name = proposal.payload["switch"]
            if proposal.state == proposal.State.REJECTED:
                self.stdout.write(f"Proposal {proposal.pk} rejected by {operator.email}; {name} stays on.")
                return
            self.stdout.write(
                f"{name} is now off: proposed by {proposal.proposed_by.email}, approved by {operator.email}."
            )
            return
        if not options["name"]:
            current = {s.name: s for s in Switch.objects.all()}
            for name in Switch.Name.values:
                s = current.get(name)
                state = "on " if s and s.on else "off"
                why = s.reason if s and s.on else ""
                if s and s.on and s.tripped_by:
                    why += f" [automatic: {s.tripped_by}; two operators clear it]"
                self.stdout.write(f"{name:<18} {state} {why}".rstrip())
            return
        if not options["state"]:
            raise CommandError("Say on, off or clear.")
        if not options["reason"].strip():
            raise CommandError("--reason is required: say why, it goes in the audit log.")
        if options["state"] == "clear":
            operator = operator_by_email(options["operator"])
            with refusals_as_command_errors():
                proposal = switch_clear_propose(name=options["name"], reason=options["reason"], acting_user=operator)
            self.stdout.write(
                f"Proposal {proposal.pk}: clear {options['name']}, by {operator.email}. It stays on until a different "
                f"operator approves: switch --approve {proposal.pk} --reason <why> --operator <email>"
            )
            return
        with refusals_as_command_errors():
            switch = switch_set(
                name=options["name"],
                on=options["state"] == "on",
                reason=options["reason"],
                actor=operator_from_option(options["operator"]),
            )
        self.stdout.write(f"{switch.name} is now {'on' if switch.on else 'off'} ({switch.reason})")
