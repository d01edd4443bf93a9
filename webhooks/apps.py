"""Deposits confirmed by PSP webhooks (Stripe, Adyen, custody)."""

from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    name = "webhooks"
    verbose_name = "Deposits and webhooks"

    def ready(self) -> None:
        # Registers webhook_events_total and the deposit_credited_once invariant.
        from . import invariants, metrics  # noqa: F401
