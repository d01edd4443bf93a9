"""`canary`: the go-live canary money loop over HTTP, with a PASS/FAIL report. Exit 1 on FAIL (NO-GO)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from ops.canary import CanaryFailed, CanaryRun, canary_report, canary_run
from ops.validation import amount_u_argument, amount_u_problem


def _destination_argument(value: str) -> dict[str, Any]:
    """--destination: a JSON object (checked by the rail when the canary requests the withdrawal)."""
    try:
        parsed = json.loads(value)
    except ValueError:
        raise argparse.ArgumentTypeError("--destination must be a JSON object") from None
    if not isinstance(parsed, dict):
        raise argparse.ArgumentTypeError("--destination must be a JSON object")
    return parsed


class Command(BaseCommand):
    help = "Deposit -> withdraw -> approve -> paid -> ledger settlement against a running server; writes a report."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--base-url", default="http://127.0.0.1:8000")
        parser.add_argument("--player-email", required=True)
        parser.add_argument("--player-password", required=True)
        parser.add_argument("--operator-email", required=True)
        parser.add_argument("--operator-password", required=True)
        parser.add_argument(
            "--amount", type=amount_u_argument, default=10_000_000, help="minor units (default 10 USDC)"
        )
        parser.add_argument("--currency", default="USDC")
        parser.add_argument("--provider", default="adyen", help="adyen, stripe, or chain (USDC on chain)")
        parser.add_argument(
            "--destination-address", default="", help="chain: the EIP-55 address the canary withdrawal is sent to"
        )
        parser.add_argument(
            "--destination",
            type=_destination_argument,
            default=None,
            help='the withdrawal\'s destination as JSON, e.g. \'{"connected_account": "acct_..."}\' (stripe) or '
            '\'{"transfer_instrument_id": "..."}\' (adyen); required unless --destination-address',
        )
        parser.add_argument(
            "--simulate",
            action="store_true",
            help="signed deposit and payout webhooks instead of real ones (never in production)",
        )
        parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for each async step")
        parser.add_argument("--release", default="", help="release SHA/tag for the report")
        parser.add_argument("--report-dir", default="artifacts/canary")

    def handle(self, *args: Any, **options: Any) -> None:
        problem = amount_u_problem(options["amount"], field="--amount")
        if problem:
            raise CommandError(problem)
        run = CanaryRun(
            base_url=options["base_url"],
            player_email=options["player_email"],
            player_password=options["player_password"],
            operator_email=options["operator_email"],
            operator_password=options["operator_password"],
            amount_u=options["amount"],
            currency=options["currency"],
            provider=options["provider"],
            simulate=options["simulate"],
            timeout_s=options["timeout"],
            destination=(
                {"address": options["destination_address"]}
                if options["destination_address"]
                else options["destination"]
            ),
            notify=lambda message: self.stdout.write(f"canary: {message}"),
        )
        try:
            canary_run(run)
        except CanaryFailed as exc:
            raise CommandError(f"canary: FAIL ({exc})") from exc
        folder = Path(options["report_dir"])
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"canary-{timezone.now():%Y%m%dT%H%M%SZ}.md"
        path.write_text(canary_report(run, release=options["release"]))
        for step in run.steps:
            self.stdout.write(f"{step.result} {step.name}: {step.detail}")
        self.stdout.write(f"report: {path}")
        if not run.passed:
            raise CommandError("canary: FAIL = NO-GO")
        self.stdout.write("canary: PASS")
