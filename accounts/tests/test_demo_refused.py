"""Demo passwords and demo accounts exist only in development: the password rules refuse the demo passwords
elsewhere, `seed --demo` is refused elsewhere, and the deploy check `accounts.E001` fails while a demo account
exists in the database."""

from __future__ import annotations

import os
from typing import Any

import pytest
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import CommandError

from accounts.checks import no_demo_accounts
from accounts.demo import DEMO_PASSWORDS, PLAYER_PASSWORD
from accounts.models import User
from ledger.models import Account, Journal

pytestmark = pytest.mark.django_db


def rows() -> tuple[int, int, list[Any]]:
    return User.objects.count(), Journal.objects.count(), sorted(Account.objects.values_list("name", "balance_u"))


@pytest.mark.parametrize("environment", ["production", "prod-local", "staging", "test"])
@pytest.mark.parametrize("password", sorted(DEMO_PASSWORDS) + ["Player-Demo-Pass", "someone-demo-pass"])
def test_demo_passwords_are_refused_outside_development(settings: Any, environment: str, password: str) -> None:
    settings.ENVIRONMENT = environment
    with pytest.raises(ValidationError) as refused:
        validate_password(password, User(email="p@example.net"))
    assert "password_is_demo" in [e.code for e in refused.value.error_list]


def test_the_demo_password_passes_the_rules_in_development_only(settings: Any) -> None:
    settings.ENVIRONMENT = "development"
    validate_password(PLAYER_PASSWORD, User(email="alice@example.com"))
    settings.ENVIRONMENT = "production"
    with pytest.raises(ValidationError, match="demo password"):
        validate_password(PLAYER_PASSWORD, User(email="alice@example.com"))


@pytest.mark.parametrize("password", ["password123", "qwertyuiop", "12345678901"])
def test_common_passwords_are_refused_in_production(settings: Any, password: str) -> None:
    settings.ENVIRONMENT = "production"
    with pytest.raises(ValidationError):
        validate_password(password, User(email="p@example.net"))


@pytest.mark.parametrize("environment", ["production", "prod-local", "test"])
def test_seed_demo_is_refused_outside_development_and_creates_nothing(settings: Any, environment: str) -> None:
    settings.ENVIRONMENT = environment
    before = rows()
    with pytest.raises(CommandError, match=f"seed --demo is refused here \\(ENVIRONMENT={environment}\\)"):
        call_command("seed", "--demo")
    assert rows() == before


def test_seed_named_accounts_take_their_password_from_the_environment(
    settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.ENVIRONMENT = "prod-local"
    monkeypatch.setenv("SEED_TEST_PASSWORD", "pl-3f9a1c7e5b2d4068")
    call_command(
        "seed", "--operator", "Ops@Example.net", "--player", "p1@example.net", "--password-env", "SEED_TEST_PASSWORD"
    )
    operator, player = User.objects.get(email="ops@example.net"), User.objects.get(email="p1@example.net")
    assert operator.is_staff and list(operator.groups.values_list("name", flat=True)) == ["finance"]
    assert not player.is_staff and player.check_password("pl-3f9a1c7e5b2d4068")
    assert operator.check_password("pl-3f9a1c7e5b2d4068")


@pytest.mark.parametrize(
    ("password", "message"),
    [("", "empty or not set"), (PLAYER_PASSWORD, "demo password"), ("short", "too short"), ("password123", "common")],
)
def test_seed_named_accounts_refuse_a_bad_password_and_create_nothing(
    settings: Any, monkeypatch: pytest.MonkeyPatch, password: str, message: str
) -> None:
    settings.ENVIRONMENT = "prod-local"
    monkeypatch.setenv("SEED_TEST_PASSWORD", password)
    before = rows()
    with pytest.raises(CommandError, match=message):
        call_command("seed", "--player", "p1@example.net", "--password-env", "SEED_TEST_PASSWORD")
    assert rows() == before
    with pytest.raises(CommandError, match="--password-env"):
        call_command("seed", "--player", "p1@example.net")
    assert rows() == before
    assert os.environ["SEED_TEST_PASSWORD"] == password  # read, never printed or changed


def test_the_deploy_check_fails_while_a_demo_account_exists(settings: Any) -> None:
    assert no_demo_accounts(databases=["default"]) == []
    assert no_demo_accounts(databases=None) == []  # `check --deploy` without --database: not run
    User.objects.create_user("alice@example.com", "x-9f3a2b7c1d")
    User.objects.create_user("seed-player0@example.com")
    [error] = no_demo_accounts(databases=["default"])
    assert error.id == "accounts.E001"
    assert "alice@example.com" in error.msg and "seed-player0@example.com" in error.msg
