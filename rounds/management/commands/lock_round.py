"""`lock_round --code YYYYMMDD`: stop taking bets now (emergency or manual lock) and publish the root."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from ops.cli import operator_from_option, refusals_as_command_errors
from ops.command_lock import command_lock
from rounds.services import round_lock


class Command(BaseCommand):
    help = "Lock a round now: no more bets; publishes the Merkle root of the accepted bets."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--code", required=True)
        parser.add_argument("--reason", default="")
        parser.add_argument("--operator", help="email of the operator running this")

    def handle(self, *args: Any, **options: Any) -> None:
        actor = operator_from_option(options["operator"])
        with command_lock("lock_round"), refusals_as_command_errors():
            round_obj, changed = round_lock(code=options["code"], acting_user=actor, reason=options["reason"])
        verb = "Locked" if changed else "Nothing to do:"
        self.stdout.write(
            f"{verb} round {round_obj.code} is {round_obj.status}; "
            f"{round_obj.up_bets + round_obj.down_bets} bets, UP {round_obj.up_pool_u} / DOWN {round_obj.down_pool_u}; "
            f"merkle root {round_obj.merkle_root or '-'}"
        )
