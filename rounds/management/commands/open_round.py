"""`open_round --code YYYYMMDD`: open the round of one XNYS session (as the beat tick would).

The reference close is the previous round's settled close or the oracle's. When the oracle cannot give it,
an operator's reference is a maker-checker decision: `--reference X --evidence E --reason R --operator a@`
*proposes* it and opens nothing; a different operator opens the round at that reference with
`--approve ID --reason R --operator b@` (or rejects it with `--reject ID --reason R --operator b@`). Until then no round
exists and no bet is taken; if the oracle answers first, beat opens the round and the proposal is cancelled.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from ops.cli import operator_by_email, operator_from_option, proposal_decide, refusals_as_command_errors
from ops.command_lock import command_lock
from rounds.models import Round
from rounds.overrides import REFERENCE_KIND, reference_propose
from rounds.selectors import round_get
from rounds.services import round_open


class Command(BaseCommand):
    help = (
        "Open the round for one XNYS session (reference from the oracle), or propose a reference close "
        "entered by hand (a second operator approves it with --approve, which opens the round)."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--code", help="session date YYYYMMDD")
        parser.add_argument("--reference", help="previous session's close, when the oracle cannot give it (proposal)")
        parser.add_argument("--evidence", default="", help="where the reference was read (required with --reference)")
        parser.add_argument("--reason", default="", help="why (required with --reference, --approve and --reject)")
        parser.add_argument("--approve", type=int, metavar="ID", help="approve another operator's reference proposal")
        parser.add_argument("--reject", type=int, metavar="ID", help="reject a reference proposal (with --reason)")
        parser.add_argument("--operator", help="email of the operator running this")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["approve"] is not None or options["reject"] is not None:
            proposal, operator = proposal_decide(
                approve=options["approve"],
                reject=options["reject"],
                kind=REFERENCE_KIND,
                operator_email=options["operator"],
                reason=options["reason"],
            )
            if proposal.state == proposal.State.REJECTED:
                self.stdout.write(f"Proposal {proposal.pk} rejected by {operator.email}; no round was opened.")
                return
            self.stdout.write(
                f"Proposal {proposal.pk} approved by {operator.email} (proposed by {proposal.proposed_by.email})."
            )
            self._report(round_get(code=proposal.result["round"]), "Opened")
            return
        if not options["code"]:
            raise CommandError("Give --code, or --approve ID / --reject ID.")
        if options["reference"] is not None:
            operator = operator_by_email(options["operator"])
            with command_lock("open_round"), refusals_as_command_errors():
                proposal = reference_propose(
                    code=options["code"],
                    reference=options["reference"],
                    reason=options["reason"],
                    evidence=options["evidence"],
                    acting_user=operator,
                )
            self.stdout.write(
                f"Proposal {proposal.pk}: open round {options['code']} at reference {proposal.payload['reference_close']}"
                f", by {operator.email}. No round is open yet; a second operator opens it with: "
                f"open_round --approve {proposal.pk} --reason <why> --operator <email>"
            )
            return
        actor = operator_from_option(options["operator"])
        with command_lock("open_round"), refusals_as_command_errors():
            round_obj, created = round_open(code=options["code"], acting_user=actor)
        self._report(round_obj, "Opened" if created else "Already open:")

    def _report(self, round_obj: Round, verb: str) -> None:
        self.stdout.write(
            f"{verb} round {round_obj.code} [{round_obj.status}] {round_obj.instrument} {round_obj.currency}\n"
            f"  lock:      {round_obj.lock_at:%Y-%m-%d %H:%M:%S}Z\n"
            f"  close:     {round_obj.close_at:%Y-%m-%d %H:%M:%S}Z\n"
            f"  settle:    {round_obj.settle_after:%Y-%m-%d %H:%M:%S}Z\n"
            f"  reference: {round_obj.reference_close} (close of {round_obj.reference_session})\n"
            f"  fee_bps:   {round_obj.fee_bps}, min stake {round_obj.min_stake_u}\n"
            f"  commit:    {round_obj.commit}"
        )
