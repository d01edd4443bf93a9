"""`bin/backoffice web|worker|beat` run the deploy checks first (`deploy_preflight`) and exit non-zero, saying
why, on any failure: an unsafe setting, a demo account in the database, an unreachable database. The processes
run as a deployment starts them: the entrypoint, the production settings, only the environment given here."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from ops.tests.test_seed_scripts import PRODUCTION_ENV

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.django_db(transaction=True)


def _env(**overrides: str) -> dict[str, str]:
    from django.db import connection

    db = connection.settings_dict
    base = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "PYTHONPATH")}
    env = {
        **base,
        **PRODUCTION_ENV,
        "PYTHON": sys.executable,
        # The processes' role (the deploy check refuses a superuser or the tables' owner).
        "DATABASE_URL": f"postgres://{settings.DB_APP_ROLE}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "REDIS_URL": "redis://127.0.0.1:6379/15",
        "PORT": "9",  # never reached: the tests that start a server stop before it binds
        "WEB_CONCURRENCY": "1",
        **overrides,
    }
    return {k: v for k, v in env.items() if v != "<unset>"}


def backoffice(*args: str, **overrides: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ROOT / "bin" / "backoffice"), *args],  # noqa: S603
        cwd=ROOT,
        env=_env(**overrides),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("process", [("web",), ("worker", "payouts"), ("beat",)], ids=lambda p: p[0])
def test_an_unsafe_setting_stops_every_process_before_it_starts(process: tuple[str, ...]) -> None:
    result = backoffice(*process, STRIPE_API_KEY="sk_test_51Hx9Qp2LmZrT")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "psp_keys_live: " in result.stderr and "ops.E0" in result.stderr
    assert f"backoffice {process[0]}: refusing to start" in result.stderr
    assert "deploy_preflight: FAIL (ENVIRONMENT=production)" in result.stderr
    # Nothing started: no gunicorn banner, no Celery banner.
    assert "Booting worker" not in result.stdout + result.stderr and "celery@" not in result.stdout + result.stderr


def test_a_demo_account_in_the_database_stops_the_web_process() -> None:
    from accounts.models import User

    User.objects.create_user("finance@example.com", "x-1b2c3d4e5f6a", is_staff=True)
    result = backoffice("web")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "accounts.E001" in result.stderr and "finance@example.com" in result.stderr


def test_an_unreachable_database_stops_the_worker() -> None:
    result = backoffice("worker", "payouts", DATABASE_URL="postgres://postgres@127.0.0.1:1/backoffice")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "accounts.E002" in result.stderr and "cannot read the accounts" in result.stderr


def test_the_preflight_passes_on_a_safe_production_environment() -> None:
    result = backoffice("manage", "deploy_preflight")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "deploy_preflight: PASS (ENVIRONMENT=production)" in result.stdout


def test_prod_local_passes_with_its_documented_differences_only(tmp_path: Path) -> None:
    """`make prod-local`'s settings: local host names, the PSP stub, plain HTTP are Info; anything else still fails."""
    local = {
        "DJANGO_SETTINGS_MODULE": "config.settings.prod_local",
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
        "SECURE_SSL_REDIRECT": "false",
        "STRIPE_API_BASE": "http://127.0.0.1:18811",
        "ADYEN_API_BASE": "http://127.0.0.1:18811",
    }
    result = backoffice("manage", "deploy_preflight", **local)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "deploy_preflight: PASS (ENVIRONMENT=prod-local)" in result.stdout
    assert "a documented prod-local difference" in result.stdout + result.stderr
    refused = backoffice("manage", "deploy_preflight", **local, METRICS_TOKEN="short")
    assert refused.returncode == 1 and "metrics_private: " in refused.stderr


def test_the_test_and_development_environments_skip_it() -> None:
    result = backoffice("manage", "deploy_preflight", DJANGO_SETTINGS_MODULE="config.settings.test")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "deploy_preflight: skipped (ENVIRONMENT=test)" in result.stdout


def test_the_production_settings_cannot_skip_it(monkeypatch: Any) -> None:
    """ENVIRONMENT is fixed by the production settings, whatever the environment variable says."""
    result = backoffice("web", ENVIRONMENT="development", STRIPE_API_KEY="sk_test_51Hx9Qp2LmZrT")
    assert result.returncode == 1 and "deploy_preflight: FAIL (ENVIRONMENT=production)" in result.stderr
