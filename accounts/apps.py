"""Accounts: players and staff, operator roles, API tokens."""

from django.apps import AppConfig
from django.db.models.signals import post_migrate


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts"

    def ready(self) -> None:
        from . import checks, login_protection  # noqa: F401  (the demo-accounts deploy check; audits lockouts)
        from .roles import ensure_operator_roles

        post_migrate.connect(ensure_operator_roles, dispatch_uid="accounts.ensure_operator_roles")
