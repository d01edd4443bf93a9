"""Deploy check: no demo account in the database (`accounts.E001`).

Registered with `deploy=True` and run against the databases `manage.py check --deploy --database default`
names (`bin/backoffice` runs it before serving, through `deploy_preflight`): it fails while one of the
accounts `seed --demo` or `seed --users` creates exists, or when the database cannot be read.
"""

from __future__ import annotations

from typing import Any

from django.core.checks import CheckMessage, Error, register
from django.db import DatabaseError
from django.db.models import Q

from .demo import DEMO_EMAILS, SEED_PLAYER_PREFIX

TAG = "production"


def demo_accounts(using: str = "default") -> list[str]:
    """The demo or seed accounts present in the database, by email."""
    from .models import User

    found = User.objects.using(using).filter(Q(email__in=DEMO_EMAILS) | Q(email__startswith=SEED_PLAYER_PREFIX))
    return sorted(found.values_list("email", flat=True)[:20])


@register(TAG, deploy=True)
def no_demo_accounts(app_configs: Any = None, databases: Any = None, **kwargs: Any) -> list[CheckMessage]:
    errors: list[CheckMessage] = []
    for alias in databases or ():
        if alias != "default":
            continue
        try:
            found = demo_accounts(alias)
        except DatabaseError as exc:
            errors.append(
                Error(
                    f"demo_accounts: cannot read the accounts ({str(exc).strip().splitlines()[0][:200]})",
                    hint="the database must be reachable and migrated before the back office starts",
                    id="accounts.E002",
                )
            )
            continue
        if found:
            errors.append(
                Error(
                    f"demo_accounts: demo or seed accounts exist: {', '.join(found)}",
                    hint="delete them (they have published passwords); seed --demo is for development only",
                    id="accounts.E001",
                )
            )
    return errors
