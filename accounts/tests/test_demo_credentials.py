"""`demo_credentials` prints what `seed --demo` created, in development only, and never a password that would not
log in (an account missing, a password changed since the seed)."""

from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from accounts.demo import DEMO_OPERATORS, DEMO_PLAYERS, PLAYER_PASSWORD
from accounts.models import User

pytestmark = pytest.mark.django_db


def credentials() -> str:
    out = StringIO()
    call_command("demo_credentials", stdout=out)
    return out.getvalue()


@pytest.fixture
def demo(settings: Any) -> None:
    settings.ENVIRONMENT = "development"
    call_command("seed", "--demo", stdout=StringIO())


def test_it_prints_every_demo_account_with_its_password_balances_and_the_urls(demo: None, monkeypatch: Any) -> None:
    monkeypatch.setenv("PORT", "8001")
    monkeypatch.setenv("STUB_PORT", "12112")
    text = credentials()
    for email, password, role, _ in DEMO_OPERATORS:
        assert f"{role:<8} {email} / {password}" in text
    for email, *_ in DEMO_PLAYERS:
        assert f"player   {email} / {PLAYER_PASSWORD}" in text
    assert "alice@example.com / player-demo-pass  (100.00 USD, 250.000000 USDC)" in text
    assert "http://127.0.0.1:8001/admin/" in text and "PSP stub http://127.0.0.1:12112" in text


def test_a_changed_password_is_not_shown(demo: None) -> None:
    finance = User.objects.get(email="finance@example.com")
    finance.set_password("a-new-and-long-passphrase-4711")
    finance.save()
    text = credentials()
    assert "finance@example.com  (password changed since the seed; not shown)" in text
    assert "finance-demo-pass" not in text and "a-new-and-long-passphrase-4711" not in text


def test_without_demo_accounts_it_says_how_to_make_them(settings: Any) -> None:
    settings.ENVIRONMENT = "development"
    with pytest.raises(CommandError, match="No demo account in this database; create them with: .*seed --demo"):
        credentials()


@pytest.mark.parametrize("environment", ["production", "prod-local", "staging", "test"])
def test_it_is_refused_outside_development_and_prints_nothing(demo: None, settings: Any, environment: str) -> None:
    settings.ENVIRONMENT = environment
    out = StringIO()
    with pytest.raises(CommandError, match=f"demo_credentials is refused here \\(ENVIRONMENT={environment}\\)"):
        call_command("demo_credentials", stdout=out)
    assert out.getvalue() == ""
