"""Token login, logout, expiry, hashing at rest, roles, and invalidating sessions."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from django.utils import timezone
from knox.models import AuthToken
from rest_framework.test import APIClient

from accounts.roles import FINANCE, SUPPORT, has_role
from accounts.tests.factories import PASSWORD
from ops.models import AuditRecord

pytestmark = pytest.mark.django_db


def login(email: str, password: str = PASSWORD) -> Any:
    return APIClient().post("/v1/auth/login", {"email": email, "password": password}, format="json")


def test_login_issues_an_expiring_token_stored_hashed(player: Any) -> None:
    response = login(player.email.upper())
    assert response.status_code == 200
    token = response.json()["token"]
    assert response.json()["user_id"] == str(player.public_id)
    stored = AuthToken.objects.get(user=player)
    assert token not in (stored.digest, stored.token_key) and len(stored.digest) >= 64
    assert stored.expiry > timezone.now()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert client.get("/v1/wallet").status_code == 200


def test_wrong_password_is_a_problem_and_issues_nothing(player: Any) -> None:
    response = login(player.email, "wrong")
    assert response.status_code == 401
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["type"] == "auth/invalid-credentials"
    assert AuthToken.objects.count() == 0


def test_expired_token_is_refused(player: Any) -> None:
    token = login(player.email).json()["token"]
    AuthToken.objects.filter(user=player).update(expiry=timezone.now() - timedelta(seconds=1))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    response = client.get("/v1/wallet")
    assert response.status_code == 401
    assert response.json()["type"] == "authentication-failed"


def test_logout_revokes_the_token(player: Any) -> None:
    token = login(player.email).json()["token"]
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert client.post("/v1/auth/logout").status_code == 204
    assert client.get("/v1/wallet").status_code == 401


def test_anonymous_requests_get_a_problem(db: Any) -> None:
    response = APIClient().get("/v1/wallet")
    assert response.status_code == 401
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["type"] == "not-authenticated"


def test_roles_are_groups_with_permissions(make_staff: Any) -> None:
    support, finance = make_staff(role=SUPPORT), make_staff(role=FINANCE)
    assert has_role(support, SUPPORT) and not has_role(support, FINANCE)
    assert has_role(finance, FINANCE)
    assert support.has_perm("ledger.view_account") and not support.has_perm("ledger.add_account")
    assert not any(
        p.startswith(("ledger.add_", "ledger.change_", "ledger.delete_")) for p in finance.get_all_permissions()
    )


def test_invalidate_sessions_logs_everyone_out(player: Any, make_staff: Any) -> None:
    operator = make_staff(role=FINANCE)
    login(player.email)
    browser = Client()
    browser.force_login(operator)
    assert browser.get("/admin/").status_code == 200
    call_command("invalidate_sessions", "--reason", "key leak drill")
    assert AuthToken.objects.count() == 0
    assert browser.get("/admin/").status_code == 302  # back to the login page
    record = AuditRecord.objects.get(action="auth.invalidate_sessions")
    assert record.reason == "key leak drill" and record.data == {"sessions": 1, "tokens": 1}


def test_invalidate_one_users_sessions_leaves_others(make_player: Any) -> None:
    alice, bob = make_player(), make_player()
    login(alice.email), login(bob.email)
    call_command("invalidate_sessions", "--user", alice.email)
    assert list(AuthToken.objects.values_list("user_id", flat=True)) == [bob.pk]
    with pytest.raises(CommandError, match="No user"):
        call_command("invalidate_sessions", "--user", "nobody@example.com")


def test_a_player_with_balances_cannot_be_made_an_operator(player: Any, fund: Any, make_staff: Any) -> None:
    from django.test import Client

    fund(player, 1_000)
    admin_user = make_staff(role="admin")
    admin_user.is_superuser = True
    admin_user.save()
    client = Client()
    client.force_login(admin_user)
    response = client.post(
        f"/admin/accounts/user/{player.pk}/change/",
        {
            "email": player.email,
            "display_name": "",
            "is_active": "on",
            "is_staff": "on",
            "date_joined_0": "2026-01-01",
            "date_joined_1": "00:00:00",
        },
    )
    assert response.status_code == 200 and b"has player balances" in response.content
    player.refresh_from_db()
    assert player.is_staff is False
