"""The double-entry ledger: accounts with stored balances, journals, append-only entries."""

from django.apps import AppConfig


class LedgerConfig(AppConfig):
    name = "ledger"
    verbose_name = "Ledger"
    # The application database role reads the ledger; only the definer functions write it (ops.db_roles,
    # migrations 0008-0009). The posting staging table is filled and emptied by its caller.
    db_privileges = {
        "ledger_account": ("SELECT",),
        "ledger_journal": ("SELECT",),
        "ledger_entry": ("SELECT",),
        "ledger_posting_leg": ("SELECT", "INSERT", "DELETE"),
    }
    db_definer_functions = ("ledger_post", "ledger_post_batch", "ledger_post_staged", "ledger_account_open")

    def ready(self) -> None:
        from ops.approvals import four_eyes_thresholds, register_currencies

        from . import metrics  # noqa: F401  (registers the database-backed metric families)
        from .currencies import CURRENCIES
        from .decisions import register_ledger_decisions

        register_currencies({code: currency.exponent for code, currency in CURRENCIES.items()})
        four_eyes_thresholds()  # a bad FOUR_EYES_THRESHOLDS stops the start (ImproperlyConfigured)
        register_ledger_decisions()
