"""`tvl`: Locked, Total Cash and Pending Withdrawals, as in the house operating manual."""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from ledger.currencies import get_currency
from ledger.selectors import tvl
from ops.cli import refusals_as_command_errors
from ops.db_router import read_from_replica


class Command(BaseCommand):
    help = "Print TVL: Locked (round pools), Total Cash (available), Pending Withdrawals (held)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--currency", default=settings.ROUND_CURRENCY)
        parser.add_argument("--json", action="store_true", help="print JSON for machines")

    def handle(self, *args: Any, **options: Any) -> None:
        with refusals_as_command_errors():
            currency = get_currency(options["currency"])
            with read_from_replica():  # a report: the replica serves it when configured and healthy
                figures = tvl(currency=currency.code)
        if options["json"]:
            self.stdout.write(json.dumps(figures.__dict__))
            return
        unit = currency.unit_name
        rows = [
            ("Locked:", figures.locked_u),
            ("Total Cash:", figures.total_cash_u),
            ("Pending Withdrawals:", figures.pending_withdrawals_u),
            ("House:", figures.house_u),
        ]
        self.stdout.write("📊 TVL Metrics:")
        for label, amount_u in rows:
            self.stdout.write(f"  {label:<21}{amount_u} {unit} ({currency.format(amount_u)})")
