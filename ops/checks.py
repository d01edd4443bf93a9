"""The production rules of `verify_prod_env` as Django system checks tagged `deploy`.

`manage.py check --deploy` (under `config.settings.production`) reports each failing rule as an
error `ops.E0NN` naming the rule, so a deployment pipeline refuses an unsafe configuration before
the code serves a request. Waivers do not apply here: they belong to `verify_prod_env`.

Under `config.settings.prod_local` (ENVIRONMENT=prod-local: `make prod-local`, production settings on one
machine with the PSP stub and no TLS) the rules its documented differences break are reported as Info,
not errors: the local host names, the PSP endpoints pointed at the stub, and plain HTTP. Production fixes
ENVIRONMENT=production, so nothing is exempted there.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Info, Warning, register

from .prod_env import SYSTEM_CHECKS

TAG = "production"
PROD_LOCAL_ENVIRONMENT = "prod-local"
PROD_LOCAL_EXEMPT = ("allowed_hosts", "psp_endpoints_real", "https")


@register(TAG, deploy=True)
def production_rules(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Run every production rule that needs no database; one error per failing rule."""
    errors: list[CheckMessage] = []
    for number, (name, check) in enumerate(SYSTEM_CHECKS, start=1):
        ok, detail = check()
        if not ok and settings.ENVIRONMENT == PROD_LOCAL_ENVIRONMENT and name in PROD_LOCAL_EXEMPT:
            errors.append(Info(f"{name}: {detail} (a documented prod-local difference)", id=f"ops.I{number:03d}"))
        elif not ok:
            errors.append(
                Error(
                    f"{name}: {detail}",
                    hint=f"verify_prod_env check {name!r}; see docs/ops/go_live_runbook.md",
                    id=f"ops.E{number:03d}",
                )
            )
    return errors


@register("database_url")
def database_named(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Without DATABASE_URL the settings load (Django's dummy backend, config/settings/base.py) for the tools that
    need no database (`makemigrations --check`, mypy); a command that needs one fails, after this warning says why."""
    if settings.DATABASES["default"]["ENGINE"] != "django.db.backends.dummy":
        return []
    return [
        Warning(
            "DATABASE_URL is not set: there is no database (PostgreSQL only).",
            hint="`make run` and `make test` start the embedded PostgreSQL and set it; by hand: "
            "export DATABASE_URL=$(python -m ops.embedded_pg start)",
            id="ops.W100",
        )
    ]
