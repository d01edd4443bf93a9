"""`tvl`: Locked, Total Cash and Pending Withdrawals, as in the house operating manual.

Every currency that has an account, like the operator's console card; `--currency` narrows it to one.
"""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand

from ledger.currencies import get_currency
from ledger.selectors import Tvl, tvl, tvl_by_currency
from ops.cli import refusals_as_command_errors
from ops.db_router import read_from_replica


class Command(BaseCommand):
    help = (
        "Print TVL: Locked (round pools), Total Cash (available), Pending Withdrawals (held), House, "
        "for every currency that has an account (the console's TVL card), or only --currency."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--currency", help="only this currency (default: every currency in use)")
        parser.add_argument(
            "--json",
            action="store_true",
            help="print JSON for machines: a list of one object per currency, or the one object with --currency",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        code = options["currency"]
        with refusals_as_command_errors():
            if code is not None:
                code = get_currency(code).code
            with read_from_replica():  # a report: the replica serves it when configured and healthy
                every = [tvl(currency=code)] if code is not None else list(tvl_by_currency().values())
        if options["json"]:
            payload: Any = every[0].__dict__ if code is not None else [t.__dict__ for t in every]
            self.stdout.write(json.dumps(payload))
            return
        self.stdout.write("📊 TVL Metrics:")
        if not every:
            self.stdout.write("  No accounts yet.")
        for figures in every:
            self._write_currency(figures)

    def _write_currency(self, figures: Tvl) -> None:
        """One currency's four figures, in minor units and formatted (the console shows the formatted ones)."""
        currency = get_currency(figures.currency)
        rows = [
            ("Locked:", figures.locked_u),
            ("Total Cash:", figures.total_cash_u),
            ("Pending Withdrawals:", figures.pending_withdrawals_u),
            ("House:", figures.house_u),
        ]
        self.stdout.write(f"  {currency.code}")
        for label, amount_u in rows:
            self.stdout.write(f"    {label:<21}{amount_u} {currency.unit_name} ({currency.format(amount_u)})")
