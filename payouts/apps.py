"""Withdrawals and payouts: hold, approve, pay out, settle, and the manual-review queue."""

from django.apps import AppConfig


class PayoutsConfig(AppConfig):
    name = "payouts"
    verbose_name = "Withdrawals and payouts"
