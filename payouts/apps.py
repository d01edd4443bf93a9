"""Withdrawals and payouts: hold, approve, pay out, settle, and the manual-review queue."""

from django.apps import AppConfig


class PayoutsConfig(AppConfig):
    name = "payouts"
    verbose_name = "Withdrawals and payouts"

    def ready(self) -> None:
        # Registers the held_equals_withdrawals invariant, the manual-review metrics and the stuck-job
        # sources (withdrawals, payout events to review).
        from . import invariants, metrics, selectors  # noqa: F401
        from .services import register_withdrawal_decisions

        register_withdrawal_decisions()
