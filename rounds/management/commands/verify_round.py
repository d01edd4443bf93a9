"""`verify_round --code YYYYMMDD`: recompute a settled round from what is public; PASS or which part fails."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from ops.cli import refusals_as_command_errors
from rounds.selectors import round_get, round_verify


class Command(BaseCommand):
    help = "Verify a settled round: commit, Merkle root, bets, evidence, result, payouts, commit chain."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--code", required=True)

    def handle(self, *args: Any, **options: Any) -> None:
        with refusals_as_command_errors():
            round_obj = round_get(code=options["code"])
        lines = round_verify(round_obj=round_obj)
        for line in lines:
            self.stdout.write(f"  {'ok  ' if line.ok else 'FAIL'} {line.part}: {line.detail}")
        failed = [line.part for line in lines if not line.ok]
        if failed:
            raise CommandError(f"FAIL round {round_obj.code}: {', '.join(failed)}")
        self.stdout.write(f"PASS round {round_obj.code}")
