"""Deposits confirmed by PSP webhooks (Stripe, Adyen, custody)."""

from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    name = "webhooks"
    verbose_name = "Deposits and webhooks"

    def ready(self) -> None:
        # Registers webhook_events_total, the deposit_credited_once invariant and the stuck-events source.
        from . import invariants, metrics, selectors  # noqa: F401
