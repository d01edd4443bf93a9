"""Deposits confirmed by PSP webhooks (Stripe, Adyen, custody)."""

from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    name = "webhooks"
    verbose_name = "Deposits and webhooks"
