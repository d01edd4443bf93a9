"""A spread attack on one account: a few wrong passwords from each of many addresses. Failures count per
account over every address (LOGIN_ACCOUNT_FAILURE_LIMIT) as well as per (account, address); the lockout
refuses even the right password, is audited once with the account and the addresses (never a password),
and the console lists it. The per-address lockout still works, and other accounts are unaffected."""

from __future__ import annotations

import json
from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from axes.models import AccessAttempt
from django.core.management import call_command
from django.test import Client
from knox.models import AuthToken
from rest_framework.test import APIClient

from accounts.login_protection import current_lockouts
from accounts.tests.factories import PASSWORD
from ops.models import AuditRecord

pytestmark = pytest.mark.django_db

ADDRESSES = [f"203.0.113.{n}" for n in range(1, 11)]  # ten attacker addresses
LEGIT = "198.51.100.20"


def api_login(email: str, password: str, ip: str) -> Any:
    return APIClient(REMOTE_ADDR=ip).post("/v1/auth/login", {"email": email, "password": password}, format="json")


def admin_login(email: str, password: str, ip: str) -> Any:
    return Client(REMOTE_ADDR=ip).post("/admin/login/?next=/admin/", {"username": email, "password": password})


def spread(email: str, per_address: int, login: Any = api_login) -> list[int]:
    """`per_address` wrong passwords from each of the ten addresses, interleaved as a botnet would."""
    return [login(email, "wrong-password", ip).status_code for _ in range(per_address) for ip in ADDRESSES]


@pytest.fixture
def limits(settings: Any) -> tuple[int, int]:
    settings.AXES_FAILURE_LIMIT = 5
    settings.LOGIN_ACCOUNT_FAILURE_LIMIT = 20
    return 5, 20


def test_forty_wrong_passwords_from_ten_addresses_lock_the_account_everywhere(
    player: Any, make_player: Any, limits: tuple[int, int]
) -> None:
    pair_limit, account_limit = limits
    bystander = make_player()
    codes = spread(player.email, 4)  # 40 failures, 4 per address: under the per-address limit
    assert codes[: account_limit - 1] == [401] * (account_limit - 1)
    assert codes[account_limit - 1] == 429  # the 20th failure locks the account
    assert set(codes[account_limit:]) == {429}
    # Failures during the lockout are not counted: the account total stays at the limit.
    assert sum(AccessAttempt.objects.filter(username=player.email).values_list("failures_since_start", flat=True)) == (
        account_limit
    )
    assert max(AccessAttempt.objects.values_list("failures_since_start", flat=True)) < pair_limit

    # The right password is refused from any address, a new one included, and no token is issued.
    for ip in (ADDRESSES[0], LEGIT):
        refused = api_login(player.email, PASSWORD, ip)
        assert refused.status_code == 429
        assert refused["Content-Type"] == "application/problem+json"
        assert refused.json()["type"] == "auth/locked-out"
        assert "from this address" not in refused.json()["detail"]
    assert admin_login(player.email, PASSWORD, LEGIT).status_code == 429
    assert AuthToken.objects.filter(user=player).count() == 0

    # Audited once, with the account and every address, no password.
    record = AuditRecord.objects.get(action="auth.lockout")
    assert record.object_id == player.email and record.actor_label == "axes" and record.to_state == "locked"
    assert record.data["scope"] == "account" and record.data["failures"] == account_limit
    assert record.data["addresses"] == sorted(ADDRESSES)
    assert "wrong-password" not in json.dumps(record.data) and "password" not in record.data

    # Another account logs in from the attackers' addresses and from elsewhere.
    assert api_login(bystander.email, PASSWORD, ADDRESSES[0]).status_code == 200
    assert api_login(bystander.email, PASSWORD, LEGIT).status_code == 200

    # The console lists the lockout.
    [lockout] = current_lockouts()
    assert (lockout.username, lockout.scope, lockout.failures, lockout.addresses) == (
        player.email,
        "account",
        account_limit,
        10,
    )


def test_the_console_shows_the_lockout(player: Any, make_staff: Any, limits: tuple[int, int]) -> None:
    spread(player.email, 2)
    client = Client()
    client.force_login(make_staff(role="support"))
    html = client.get("/admin/").content.decode()
    assert 'id="lockout-count">1<' in html
    assert f'data-lockout="{player.email}"' in html and "every address, 20 failures from 10 addresses" in html


def test_the_console_shows_no_lockout_when_there_is_none(player: Any, make_staff: Any, limits: tuple[int, int]) -> None:
    spread(player.email, 1)  # 10 failures: under both limits
    assert api_login(player.email, PASSWORD, LEGIT).status_code == 200
    client = Client()
    client.force_login(make_staff(role="support"))
    assert 'id="lockout-count">0<' in client.get("/admin/").content.decode()
    assert current_lockouts() == []


def test_the_admin_login_counts_per_account_too(make_staff: Any, limits: tuple[int, int]) -> None:
    operator = make_staff(role="finance")
    codes = spread(operator.email, 2, login=admin_login)
    assert codes[:19] == [200] * 19 and codes[19] == 429  # the form again with an error, then the lockout page
    refused = admin_login(operator.email, PASSWORD, LEGIT)
    assert refused.status_code == 429 and b"locked from every address" in refused.content
    assert AuditRecord.objects.get(action="auth.lockout").data["scope"] == "account"


def test_the_account_lockout_ends_after_the_cooloff(player: Any, settings: Any, limits: tuple[int, int]) -> None:
    spread(player.email, 2)
    assert api_login(player.email, PASSWORD, LEGIT).status_code == 429
    AccessAttempt.objects.update(
        attempt_time=AccessAttempt.objects.order_by("-attempt_time")[0].attempt_time
        - settings.AXES_COOLOFF_TIME
        - timedelta(seconds=1)
    )
    assert api_login(player.email, PASSWORD, LEGIT).status_code == 200
    assert current_lockouts() == []


def test_an_operator_unlocks_the_account_from_every_address(player: Any, limits: tuple[int, int]) -> None:
    spread(player.email, 2)
    assert api_login(player.email, PASSWORD, LEGIT).status_code == 429
    out = StringIO()
    call_command("unlock_login", player.email, "--reason", "spread attack, player verified", stdout=out)
    assert "20 lockout record(s) removed" not in out.getvalue()  # one record per address, not per failure
    assert "10 lockout record(s) removed" in out.getvalue()
    assert api_login(player.email, PASSWORD, LEGIT).status_code == 200
    record = AuditRecord.objects.get(action="auth.unlock")
    assert record.data["addresses"] == sorted(ADDRESSES)


def test_the_per_address_lockout_still_works_and_other_addresses_log_in(player: Any, limits: tuple[int, int]) -> None:
    pair_limit, _ = limits
    codes = [api_login(player.email, "wrong-password", ADDRESSES[0]).status_code for _ in range(pair_limit)]
    assert codes == [401] * (pair_limit - 1) + [429]
    assert api_login(player.email, PASSWORD, ADDRESSES[0]).status_code == 429
    refused = api_login(player.email, PASSWORD, ADDRESSES[0])
    assert "from this address" in refused.json()["detail"]
    assert api_login(player.email, PASSWORD, LEGIT).status_code == 200
    record = AuditRecord.objects.get(action="auth.lockout")
    assert record.data["scope"] == "address" and record.data["addresses"] == [ADDRESSES[0]]
    # An address-only lockout is listed as such while it lasts (the success elsewhere cleared only that pair).
    [lockout] = current_lockouts()
    assert lockout.scope == "address" and lockout.addresses == 1


def test_a_lockout_is_audited_once_and_again_after_an_unlock(player: Any, limits: tuple[int, int]) -> None:
    spread(player.email, 2)  # locked: audited once
    for ip in (LEGIT, ADDRESSES[0]):
        assert api_login(player.email, "wrong-password", ip).status_code == 429  # refused, not audited again
    assert AuditRecord.objects.filter(action="auth.lockout").count() == 1
    call_command("unlock_login", player.email, "--reason", "verified", stdout=StringIO())
    assert spread(player.email, 2)[-1] == 429  # the attack goes on: locked again, audited again
    assert AuditRecord.objects.filter(action="auth.lockout", data__scope="account").count() == 2


def test_unlocking_one_address_lifts_the_account_lockout_only_below_the_limit(
    player: Any, settings: Any, limits: tuple[int, int]
) -> None:
    spread(player.email, 2)  # 20 counted, 2 per address: locked from every address
    out = StringIO()
    call_command("unlock_login", player.email, "--ip", ADDRESSES[0], "--reason", "their home address", stdout=out)
    assert "still locked" not in out.getvalue()  # 18 left: under the limit
    assert api_login(player.email, PASSWORD, ADDRESSES[0]).status_code == 200
    spread(player.email, 2)
    settings.LOGIN_ACCOUNT_FAILURE_LIMIT = 15  # (a lower limit: the other addresses alone still lock it)
    out = StringIO()
    call_command("unlock_login", player.email, "--ip", ADDRESSES[0], "--reason", "their home address", stdout=out)
    assert "still locked from every address" in out.getvalue() and "run without --ip" in out.getvalue()
    assert api_login(player.email, PASSWORD, ADDRESSES[0]).status_code == 429
