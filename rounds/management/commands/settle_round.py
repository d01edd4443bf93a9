"""`settle_round --code YYYYMMDD --result AUTO|UP|DOWN|VOID`: settle through the same service as the tick.

AUTO takes the close from the oracle (two agreeing sources). UP, DOWN and VOID force the result, only
from LOCKED, with `--reason` (and `--evidence`) recorded. Running it on a finished round prints the
result and changes nothing. `--dry-run` prints the breakdown without moving money.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from ops.cli import operator_from_option
from ops.command_lock import command_lock
from rounds.domain.pool import Result, VoidReason
from rounds.selectors import round_get
from rounds.services import round_settle, settlement_preview, settlement_preview_auto

from ._helpers import refusals_as_command_errors


class Command(BaseCommand):
    help = "Settle a round: AUTO (oracle) or a forced UP/DOWN/VOID from LOCKED (needs --reason)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--code", required=True)
        parser.add_argument("--result", required=True, choices=["AUTO", "UP", "DOWN", "VOID"])
        parser.add_argument("--reason", default="", help="required for UP, DOWN and VOID")
        parser.add_argument("--evidence", default="", help="where the forced result's price was verified")
        parser.add_argument("--operator", help="email of the operator running this")
        parser.add_argument("--dry-run", action="store_true", help="print the breakdown, move nothing")

    def handle(self, *args: Any, **options: Any) -> None:
        code, wanted = options["code"], options["result"]
        if options["dry_run"]:
            close = None
            with refusals_as_command_errors():
                if wanted == "AUTO":
                    breakdown, close = settlement_preview_auto(code=code)
                else:
                    reason = VoidReason.CANCELLED if wanted == "VOID" else None
                    breakdown = settlement_preview(code=code, result=Result(wanted), void_reason=reason)
            self.stdout.write(f"DRY RUN round {code}: nothing moved.")
            self._print({"close": close, **breakdown.__dict__})
            return
        actor = operator_from_option(options["operator"])
        with command_lock("settle_round"), refusals_as_command_errors():
            round_obj, changed = round_settle(
                code=code, result=wanted, acting_user=actor, reason=options["reason"], evidence=options["evidence"]
            )
            round_obj = round_get(code=code)
        verb = "Settled" if changed else "Already settled:"
        self.stdout.write(f"{verb} round {round_obj.code} is {round_obj.status}")
        self._print({
            "result": round_obj.result, "void_reason": round_obj.void_reason or None,
            "close": round_obj.close_price or None, "reference": round_obj.reference_close,
            "total_u": round_obj.total_pool_u, "up_pool_u": round_obj.up_pool_u,
            "down_pool_u": round_obj.down_pool_u, "fee_u": round_obj.fee_u, "breakage_u": round_obj.breakage_u,
            "payouts_total_u": round_obj.payouts_total_u, "winners": round_obj.winners,
        })

    def _print(self, figures: dict[str, Any]) -> None:
        for key, value in figures.items():
            self.stdout.write(f"  {key + ':':<17}{value}")
