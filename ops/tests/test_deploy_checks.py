"""`manage.py check --deploy` under config.settings.production: clean with a complete environment,
an error for each unsafe setting (one test each). Each runs Django in a subprocess with only the
environment given here, as a deployment pipeline would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.db import connection

from ops.db_roles import app_role

ROOT = Path(__file__).resolve().parents[2]

GOOD_ENV = {
    "DJANGO_SETTINGS_MODULE": "config.settings.production",
    "DJANGO_SECRET_KEY": "p7#Vq2!xL9mZ" * 5,
    "DJANGO_ALLOWED_HOSTS": "backoffice.example.net",
    "DATABASE_URL": "<the test database, as the application role: _database_url>",
    "REDIS_URL": "redis://redis.internal:6379/0",
    "STRIPE_KEY_MODE": "live",
    "STRIPE_API_KEY": "sk_live_51Hx9Qp2LmZrT",
    "STRIPE_WEBHOOK_SECRET": "whsec_Rk2v9QpX7mL",
    "ADYEN_ENVIRONMENT": "live",
    "ADYEN_LIVE_ENDPOINT_PREFIX": "1797a841fbb37ca7-AdyenDemo",
    "ADYEN_API_KEY": "AQEyhmfxK4Lm",
    "ADYEN_MERCHANT_ACCOUNT": "BackofficeECOM",
    "ADYEN_BALANCE_ACCOUNT_ID": "BA3227C223222B5FG",
    "ADYEN_HMAC_KEY": "A1B2C3D4" * 8,
    "CUSTODY_WEBHOOK_KEY": "custody-prod-Rk2v9QpX7mL",
    "DEPOSIT_RETURN_URL": "https://backoffice.example.net/deposits/return",
    "METRICS_TOKEN": "Qm7Rk2v9Xp3Lz8Wn4Tc6Yb1Hd5Gf0Js2",
    "CORS_ALLOWED_ORIGINS": "https://app.example.net",
}


def database_url(user: str) -> str:
    db = connection.settings_dict
    return f"postgres://{user}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.fixture(autouse=True)
def _database_url(django_db_setup: Any) -> None:
    """The deploy checks read the connected role: the migrated test database, logged in as the app role."""
    GOOD_ENV["DATABASE_URL"] = database_url(app_role())


def check_deploy(**overrides: str) -> subprocess.CompletedProcess[str]:
    """Run `manage.py check --deploy --fail-level WARNING` with GOOD_ENV plus overrides ('' unsets)."""
    base = {
        k: v
        for k, v in os.environ.items()
        if k in ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "VIRTUAL_ENV", "PYTHONPATH")
    }
    env = {**base, **GOOD_ENV, **overrides}
    env = {k: v for k, v in env.items() if v != "<unset>"}
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_deploy_is_clean_with_a_complete_production_environment() -> None:
    result = check_deploy()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (1 silenced)." in result.stdout  # security.W021: preload off


@pytest.mark.parametrize(
    ("overrides", "rule"),
    [
        ({"STRIPE_API_KEY": "sk_test_51Hx9Qp2LmZrT"}, "psp_keys_live"),
        ({"STRIPE_KEY_MODE": "test"}, "stripe_live"),
        ({"ADYEN_ENVIRONMENT": "test"}, "adyen_live"),
        ({"ADYEN_LIVE_ENDPOINT_PREFIX": ""}, "adyen_live"),
        ({"DJANGO_SECRET_KEY": "short-but-not-empty"}, "secret_key"),
        ({"DJANGO_SECRET_KEY": "a" * 60}, "secret_key"),
        ({"STRIPE_WEBHOOK_SECRET": ""}, "webhook_secrets"),
        ({"ADYEN_HMAC_KEY": "44782DEF547AAA06C910C43932B1EB0C71FC68D9D0C057550C48EC2ACF6BA056"}, "webhook_secrets"),
        ({"CUSTODY_WEBHOOK_KEY": "custody-test-key"}, "webhook_secrets"),
        ({"DJANGO_ALLOWED_HOSTS": "*"}, "allowed_hosts"),
        ({"CORS_ALLOWED_ORIGINS": "*"}, "cors_restricted"),
        ({"CORS_ALLOWED_ORIGINS": "http://app.example.net"}, "cors_restricted"),
        ({"SECURE_HSTS_SECONDS": "3600"}, "hsts"),
        ({"METRICS_TOKEN": ""}, "metrics_private"),
        ({"METRICS_TOKEN": "short"}, "metrics_private"),
        ({"LOGIN_PROTECTION_ENABLED": "false"}, "login_protection"),
        ({"LOGIN_ACCOUNT_FAILURE_LIMIT": "500"}, "login_protection"),
        ({"SECURE_SSL_REDIRECT": "false"}, "https"),
        ({"REDIS_URL": "filesystem://"}, "broker_redis"),
    ],
    ids=lambda v: "-".join(f"{k}={v[k][:12]}" for k in v) if isinstance(v, dict) else v,
)
def test_check_deploy_fails_on_each_unsafe_setting(overrides: dict[str, str], rule: str) -> None:
    result = check_deploy(**overrides)
    assert result.returncode != 0
    assert f"{rule}: " in result.stderr, result.stderr
    assert "ops.E0" in result.stderr


def test_simulation_and_bootstrap_cannot_be_switched_on_in_production() -> None:
    """Production forces them off whatever the environment says, so the rule holds."""
    result = check_deploy(SIMULATION_ENABLED="true", BOOTSTRAP_ENABLED="true")
    assert result.returncode == 0, result.stderr


def test_simulation_on_is_refused_by_the_deploy_checks(settings: object, db: Any) -> None:
    """With simulation on (settings that are not production's), the rule is an error."""
    from ops.checks import production_rules

    settings.SIMULATION_ENABLED = True  # type: ignore[attr-defined]
    assert any("simulation_off: on: ['SIMULATION_ENABLED'" in str(m.msg) for m in production_rules())


def test_debug_on_is_refused_by_the_deploy_checks(settings: object, db: Any) -> None:
    from ops.checks import production_rules

    settings.DEBUG = True  # type: ignore[attr-defined]
    assert any(str(m.msg) == "debug_off: DEBUG is on" for m in production_rules())


def test_check_deploy_fails_when_the_processes_connect_as_a_superuser() -> None:
    result = check_deploy(DATABASE_URL=database_url("postgres"))
    assert result.returncode != 0
    assert "database_role: connected as postgres: postgres is a superuser" in result.stderr, result.stderr


def test_check_deploy_fails_when_the_database_cannot_be_read() -> None:
    result = check_deploy(DATABASE_URL="postgres://backoffice_app@127.0.0.1:1/nowhere")
    assert result.returncode != 0
    assert "database_role: cannot read the database role" in result.stderr, result.stderr


@pytest.mark.django_db
def test_the_role_check_refuses_the_tables_owner_and_a_superuser_and_passes_the_app_role(db_owner: Any) -> None:
    """In the test's transaction (rolled back, roles included): a role owning a table, then a superuser."""
    from ops.prod_env import check_database_role

    ok, detail = check_database_role()
    assert ok, detail
    assert detail == f"connected as {app_role()}: no superuser, owns no table"
    with db_owner() as cursor:
        ok, detail = check_database_role()
        assert not ok and "is a superuser" in detail, detail
        cursor.execute("CREATE ROLE h19_probe_owner NOLOGIN")
        cursor.execute("ALTER TABLE ops_switch OWNER TO h19_probe_owner")
        cursor.execute("SET SESSION AUTHORIZATION h19_probe_owner")
        ok, detail = check_database_role()
        assert not ok, detail
        assert detail == (
            "connected as h19_probe_owner: h19_probe_owner owns 1 of the project's tables (it is the migrating owner role)"
        )
