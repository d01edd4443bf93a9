"""The double-entry ledger: accounts with stored balances, journals, append-only entries."""

from django.apps import AppConfig


class LedgerConfig(AppConfig):
    name = "ledger"
    verbose_name = "Ledger"

    def ready(self) -> None:
        from ops.approvals import four_eyes_thresholds, register_currencies

        from . import metrics  # noqa: F401  (registers the database-backed metric families)
        from .currencies import CURRENCIES
        from .decisions import register_ledger_decisions

        register_currencies({code: currency.exponent for code, currency in CURRENCIES.items()})
        four_eyes_thresholds()  # a bad FOUR_EYES_THRESHOLDS stops the start (ImproperlyConfigured)
        register_ledger_decisions()
