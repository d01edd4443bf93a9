"""Login protection (django-axes) on the API and the admin, the unlock command, password rules,
and the per-user token limit."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from axes.models import AccessAttempt
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.test import Client
from knox.models import AuthToken
from rest_framework.test import APIClient

from accounts.tests.factories import PASSWORD
from ops.models import AuditRecord

pytestmark = pytest.mark.django_db

ATTACKER = "203.0.113.7"
ELSEWHERE = "198.51.100.20"


def api_login(email: str, password: str, ip: str = ATTACKER) -> Any:
    return APIClient(REMOTE_ADDR=ip).post("/v1/auth/login", {"email": email, "password": password}, format="json")


def admin_login(email: str, password: str, ip: str = ATTACKER) -> Any:
    return Client(REMOTE_ADDR=ip).post("/admin/login/?next=/admin/", {"username": email, "password": password})


def test_the_nth_wrong_password_locks_the_account_for_that_address_on_the_api(player: Any, settings: Any) -> None:
    limit = settings.AXES_FAILURE_LIMIT
    for _ in range(limit - 1):
        assert api_login(player.email, "wrong-password").status_code == 401
    locked = api_login(player.email, "wrong-password")
    assert locked.status_code == 429
    assert locked["Content-Type"] == "application/problem+json"
    assert locked.json()["type"] == "auth/locked-out"
    # The right password is refused now, from that address, and no token is issued.
    refused = api_login(player.email, PASSWORD)
    assert refused.status_code == 429 and refused.json()["type"] == "auth/locked-out"
    assert AuthToken.objects.filter(user=player).count() == 0
    # Another address is not locked.
    assert api_login(player.email, PASSWORD, ip=ELSEWHERE).status_code == 200
    # The lockout is audited once (not once per refused attempt).
    records = AuditRecord.objects.filter(action="auth.lockout")
    assert records.count() == 1
    record = records.get()
    assert record.object_id == player.email and record.data["ip_address"] == ATTACKER
    assert record.actor_label == "axes" and record.data["path"] == "/v1/auth/login"


def test_the_lockout_ends_after_the_cooloff(player: Any, settings: Any) -> None:
    for _ in range(settings.AXES_FAILURE_LIMIT):
        api_login(player.email, "wrong-password")
    assert api_login(player.email, PASSWORD).status_code == 429
    AccessAttempt.objects.update(
        attempt_time=AccessAttempt.objects.get().attempt_time - settings.AXES_COOLOFF_TIME - timedelta(seconds=1)
    )
    assert api_login(player.email, PASSWORD).status_code == 200


def test_an_operator_unlocks_the_account_and_the_unlock_is_audited(player: Any, settings: Any) -> None:
    for _ in range(settings.AXES_FAILURE_LIMIT):
        api_login(player.email, "wrong-password")
    assert api_login(player.email, PASSWORD).status_code == 429
    out = StringIO()
    call_command("unlock_login", player.email.upper(), "--reason", "player called support, ID checked", stdout=out)
    assert f"unlocked {player.email} from every address: 1 lockout record(s) removed" in out.getvalue()
    assert api_login(player.email, PASSWORD).status_code == 200
    record = AuditRecord.objects.get(action="auth.unlock")
    assert record.object_id == player.email and record.reason == "player called support, ID checked"
    assert record.data["addresses"] == [ATTACKER] and record.actor_label.startswith("cli:")


def test_the_admin_login_locks_out_too(make_staff: Any, settings: Any) -> None:
    operator = make_staff(role="finance")
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert admin_login(operator.email, "wrong-password").status_code == 200  # the form again, with an error
    assert admin_login(operator.email, "wrong-password").status_code == 429
    refused = admin_login(operator.email, PASSWORD)
    assert refused.status_code == 429 and b"Too many failed logins" in refused.content
    assert admin_login(operator.email, PASSWORD, ip=ELSEWHERE).status_code == 302
    assert AuditRecord.objects.filter(action="auth.lockout", object_id=operator.email).count() == 1
    call_command("unlock_login", operator.email, "--ip", ATTACKER, "--reason", "operator typo", stdout=StringIO())
    assert admin_login(operator.email, PASSWORD).status_code == 302


def test_unlock_refuses_a_bad_address() -> None:
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="Not an IP address"):
        call_command("unlock_login", "a@example.com", "--ip", "nowhere", "--reason", "x")
    assert not AuditRecord.objects.filter(action="auth.unlock").exists()


def test_a_successful_login_clears_earlier_failures(player: Any, settings: Any) -> None:
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        api_login(player.email, "wrong-password")
    assert api_login(player.email, PASSWORD).status_code == 200
    assert api_login(player.email, "wrong-password").status_code == 401


@pytest.mark.parametrize("password", ["84736251", "player0@example.com", "password123"])
def test_weak_passwords_are_refused(password: str) -> None:
    from accounts.models import User

    user = User(email="player0@example.com")
    with pytest.raises(ValidationError):
        validate_password(password, user)


def test_operators_need_twelve_characters_players_eight() -> None:
    from accounts.models import User

    validate_password("tulip-river9", User(email="p@example.com"))  # 12
    validate_password("tulip-rivr9", User(email="p@example.com"))  # 11, a player
    with pytest.raises(ValidationError, match="at least 12 characters"):
        validate_password("tulip-rivr9", User(email="o@example.com", is_staff=True))
    validate_password("tulip-river9", User(email="o@example.com", is_staff=True))


def test_the_token_limit_per_user_holds(player: Any, settings: Any) -> None:
    limit = settings.REST_KNOX["TOKEN_LIMIT_PER_USER"]
    tokens = [api_login(player.email, PASSWORD).json()["token"] for _ in range(limit + 5)]
    assert AuthToken.objects.filter(user=player).count() == limit
    # The newest token works; the oldest were revoked.
    newest, oldest = APIClient(), APIClient()
    newest.credentials(HTTP_AUTHORIZATION=f"Token {tokens[-1]}")
    oldest.credentials(HTTP_AUTHORIZATION=f"Token {tokens[0]}")
    assert newest.get("/v1/wallet").status_code == 200
    assert oldest.get("/v1/wallet").status_code == 401
