"""The double-entry ledger: accounts with stored balances, journals, append-only entries."""

from django.apps import AppConfig


class LedgerConfig(AppConfig):
    name = "ledger"
    verbose_name = "Ledger"

    def ready(self) -> None:
        from . import metrics  # noqa: F401  (registers the database-backed metric families)
        from .decisions import register_ledger_decisions

        register_ledger_decisions()
