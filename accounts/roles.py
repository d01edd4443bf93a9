"""Operator roles as groups with permissions: support (read only), finance, admin.

The groups are (re)built after every migrate, so a permission that a new app adds reaches its role
without a data migration per app.
"""

from __future__ import annotations

import logging
from typing import Any

logger = logging.getLogger(__name__)

SUPPORT = "support"
FINANCE = "finance"
ADMIN = "admin"
ROLES = (SUPPORT, FINANCE, ADMIN)
LOCAL_APPS = ("accounts", "ledger", "ops", "webhooks", "payouts", "rounds")

# Business permissions beyond view: "app_label.codename". Missing ones are skipped (app not built yet).
FINANCE_PERMISSIONS = (
    "payouts.approve_withdrawal",
    "payouts.reject_withdrawal",
    "payouts.resolve_withdrawal",
    "payouts.retry_payout",
    "rounds.force_round_result",
    "rounds.enter_oracle_price",
    "webhooks.replay_webhookevent",
    "ledger.post_adjustment",
    "ledger.credit_player",
)


def ensure_operator_roles(sender: Any = None, **kwargs: Any) -> None:
    """Create the role groups and give each its permissions (idempotent)."""
    from django.contrib.auth.models import Group, Permission

    view = Permission.objects.filter(content_type__app_label__in=LOCAL_APPS, codename__startswith="view_")
    support, _ = Group.objects.get_or_create(name=SUPPORT)
    support.permissions.set(view)

    business: list[Permission] = []
    for dotted in FINANCE_PERMISSIONS:
        app_label, codename = dotted.split(".", 1)
        business.extend(Permission.objects.filter(content_type__app_label=app_label, codename=codename))
    finance, _ = Group.objects.get_or_create(name=FINANCE)
    finance.permissions.set(list(view) + business)

    admin, _ = Group.objects.get_or_create(name=ADMIN)
    admin.permissions.set(Permission.objects.all())


def has_role(user: Any, role: str) -> bool:
    """Return whether the user is active staff in the given role (superusers hold every role)."""
    if not (user and user.is_authenticated and user.is_active and user.is_staff):
        return False
    return bool(user.is_superuser or user.groups.filter(name=role).exists())
