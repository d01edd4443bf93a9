"""`open_round --code YYYYMMDD`: open the round of one XNYS session (as the beat tick would)."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from ops.cli import operator_from_option, refusals_as_command_errors
from ops.command_lock import command_lock
from rounds.services import round_open


class Command(BaseCommand):
    help = "Open the round for one XNYS session: times from the calendar, reference close, commit hash."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--code", required=True, help="session date YYYYMMDD")
        parser.add_argument("--reference", help="previous session's close, when the oracle cannot give it")
        parser.add_argument("--reason", default="", help="why (required with --reference)")
        parser.add_argument("--operator", help="email of the operator running this")

    def handle(self, *args: Any, **options: Any) -> None:
        reference = None
        if options["reference"]:
            try:
                reference = Decimal(options["reference"])
            except InvalidOperation as exc:
                raise CommandError(f"--reference {options['reference']!r} is not a number.") from exc
        actor = operator_from_option(options["operator"])
        with command_lock("open_round"), refusals_as_command_errors():
            round_obj, created = round_open(
                code=options["code"], acting_user=actor, reference_close=reference, reason=options["reason"]
            )
        verb = "Opened" if created else "Already open:"
        self.stdout.write(
            f"{verb} round {round_obj.code} [{round_obj.status}] {round_obj.instrument} {round_obj.currency}\n"
            f"  lock:      {round_obj.lock_at:%Y-%m-%d %H:%M:%S}Z\n"
            f"  close:     {round_obj.close_at:%Y-%m-%d %H:%M:%S}Z\n"
            f"  settle:    {round_obj.settle_after:%Y-%m-%d %H:%M:%S}Z\n"
            f"  reference: {round_obj.reference_close} (close of {round_obj.reference_session})\n"
            f"  fee_bps:   {round_obj.fee_bps}, min stake {round_obj.min_stake_u}\n"
            f"  commit:    {round_obj.commit}"
        )
