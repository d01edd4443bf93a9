"""`settle_round`: settle a round from the oracle, or force its result under four eyes.

- `--code C --result AUTO`: the oracle's close (two agreeing sources), after close + 5 min; what beat does.
- `--code C --result UP|DOWN --reason R --evidence E --operator a@`: *proposes* a forced result (only
  from LOCKED, only after the session's close); nothing moves.
- `--approve ID --reason R --operator b@` applies a proposal (b must not be a; R is b's own reason); `--reject ID --reason R --operator b@`.
- `--code C --result VOID --reason R --operator a@`: the emergency stop, one operator, from OPEN or LOCKED.

A round already finished with another result exits non-zero and says what it is. `--dry-run` prints
the breakdown and moves nothing.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from ops.cli import operator_by_email, operator_from_option, proposal_decide, refusals_as_command_errors
from ops.command_lock import command_lock
from rounds.domain.pool import Result, VoidReason
from rounds.models import Round
from rounds.overrides import FORCE_KIND, force_result_propose, round_void
from rounds.selectors import round_get
from rounds.settlement import round_settle, settlement_preview, settlement_preview_auto


class Command(BaseCommand):
    help = (
        "Settle a round (AUTO), propose a forced UP/DOWN (a second operator approves with --approve), "
        "or void it (emergency stop)."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--code", help="the round, YYYYMMDD")
        parser.add_argument("--result", choices=["AUTO", "UP", "DOWN", "VOID"])
        parser.add_argument("--approve", type=int, metavar="ID", help="apply another operator's proposal")
        parser.add_argument("--reject", type=int, metavar="ID", help="reject a pending proposal (with --reason)")
        parser.add_argument("--reason", default="", help="required for UP, DOWN, VOID, --approve and --reject")
        parser.add_argument("--evidence", default="", help="where the forced result's close was read (UP/DOWN)")
        parser.add_argument("--operator", help="your email; required for every decision but AUTO")
        parser.add_argument("--dry-run", action="store_true", help="print the breakdown, move nothing")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["approve"] is not None or options["reject"] is not None:
            self._decide(options)
            return
        code, wanted = options["code"], options["result"]
        if not code or not wanted:
            raise CommandError("Give --code and --result, or --approve ID / --reject ID.")
        if options["dry_run"]:
            self._dry_run(code, wanted)
            return
        with command_lock("settle_round"), refusals_as_command_errors():
            before = round_get(code=code)
            if before.is_finished and wanted != "AUTO" and before.result != wanted:
                raise CommandError(
                    f"Round {code} is already {before.status} with result {before.result}; "
                    f"{wanted} was not applied. Corrections after settlement are adjustments."
                )
            if wanted in ("UP", "DOWN"):
                operator = operator_by_email(options["operator"])
                proposal = force_result_propose(
                    code=code,
                    result=wanted,
                    reason=options["reason"],
                    evidence=options["evidence"],
                    acting_user=operator,
                )
                self.stdout.write(
                    f"Proposal {proposal.pk}: force {wanted} on round {code}, by {operator.email}. Nothing moved; "
                    f"a second operator applies it with: settle_round --approve {proposal.pk} --reason <why> --operator <email>"
                )
                return
            if wanted == "VOID":
                round_obj, changed = round_void(
                    code=code, reason=options["reason"], acting_user=operator_by_email(options["operator"])
                )
            else:
                round_obj, changed = round_settle(code=code, acting_user=operator_from_option(options["operator"]))
        self._report(round_obj, changed)

    def _decide(self, options: dict[str, Any]) -> None:
        proposal, operator = proposal_decide(
            approve=options["approve"],
            reject=options["reject"],
            kind=FORCE_KIND,
            operator_email=options["operator"],
            reason=options["reason"],
        )
        if proposal.state == proposal.State.REJECTED:
            self.stdout.write(f"Proposal {proposal.pk} rejected by {operator.email}; nothing moved.")
            return
        code = proposal.result["round"]
        self.stdout.write(
            f"Proposal {proposal.pk} approved by {operator.email} (proposed by {proposal.proposed_by.email})."
        )
        self._report(round_get(code=code), True)

    def _dry_run(self, code: str, wanted: str) -> None:
        close = None
        with refusals_as_command_errors():
            if wanted == "AUTO":
                breakdown, close = settlement_preview_auto(code=code)
            else:
                reason = VoidReason.CANCELLED if wanted == "VOID" else None
                breakdown = settlement_preview(code=code, result=Result(wanted), void_reason=reason)
        self.stdout.write(f"DRY RUN round {code}: nothing moved.")
        self._print({"close": close, **breakdown.__dict__})

    def _report(self, round_obj: Round, changed: bool) -> None:
        verb = "Settled" if changed else "Already settled:"
        self.stdout.write(f"{verb} round {round_obj.code} is {round_obj.status}")
        self._print(
            {
                "result": round_obj.result,
                "void_reason": round_obj.void_reason or None,
                "close": round_obj.close_price or None,
                "reference": round_obj.reference_close,
                "total_u": round_obj.total_pool_u,
                "up_pool_u": round_obj.up_pool_u,
                "down_pool_u": round_obj.down_pool_u,
                "fee_u": round_obj.fee_u,
                "breakage_u": round_obj.breakage_u,
                "payouts_total_u": round_obj.payouts_total_u,
                "winners": round_obj.winners,
            }
        )

    def _print(self, figures: dict[str, Any]) -> None:
        for key, value in figures.items():
            self.stdout.write(f"  {key + ':':<17}{value}")
