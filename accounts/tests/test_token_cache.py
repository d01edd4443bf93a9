"""A token remembered for at most AUTH_TOKEN_CACHE_S per process: revocations by another process (a row
deleted, a user deactivated) take effect within that bound, an expired token is refused at once, a
logout at once in its own process, and a refused token is never remembered."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from knox.models import AuthToken
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.test import APIClient

from accounts.models import User
from conftest import token_client

pytestmark = pytest.mark.django_db


def _delete_elsewhere(user: Any) -> None:
    """Delete the user's tokens as another process would: in SQL, nothing of this process is told."""
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM knox_authtoken WHERE user_id = %s", [user.pk])


def _status(client: APIClient) -> int:
    return client.get("/v1/wallet").status_code


def test_a_token_deleted_elsewhere_works_at_most_the_bound_then_is_refused(
    player: Any, ttl_clock: Any, settings: Any
) -> None:
    assert settings.AUTH_TOKEN_CACHE_S == 1.0  # the documented default
    client = token_client(player)
    assert _status(client) == 200
    _delete_elsewhere(player)
    ttl_clock.advance(settings.AUTH_TOKEN_CACHE_S - 0.001)
    assert _status(client) == 200  # still remembered: the bound is the whole staleness
    ttl_clock.advance(0.001)
    response = client.get("/v1/wallet")
    assert response.status_code == 401 and response.json()["type"] == "authentication-failed"
    assert _status(client) == 401


def test_on_the_real_clock_a_revocation_takes_effect_after_the_bound(player: Any, settings: Any) -> None:
    """The monotonic clock itself (no fake): waits just past the bound once."""
    client = token_client(player)
    assert _status(client) == 200
    _delete_elsewhere(player)
    time.sleep(settings.AUTH_TOKEN_CACHE_S + 0.05)
    assert _status(client) == 401


def test_a_deactivated_user_is_refused_within_the_bound(player: Any, ttl_clock: Any, settings: Any) -> None:
    client = token_client(player)
    assert _status(client) == 200
    User.objects.filter(pk=player.pk).update(is_active=False)
    ttl_clock.advance(settings.AUTH_TOKEN_CACHE_S)
    assert _status(client) == 401
    assert AuthToken.objects.filter(user=player).exists()  # refused for the user, the token row stays


def test_an_expired_token_is_refused_at_once_even_when_remembered(
    player: Any, ttl_clock: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from accounts import authentication

    client = token_client(player)
    assert _status(client) == 200
    expiry = AuthToken.objects.get(user=player).expiry
    monkeypatch.setattr(authentication.timezone, "now", lambda: expiry + timedelta(microseconds=1))
    assert _status(client) == 401  # the clock has not moved: the remembered expiry is checked every time
    assert not AuthToken.objects.filter(user=player).exists()  # and the row deleted, as before


def test_logout_refuses_the_token_at_once_in_its_own_process(player: Any, ttl_clock: Any) -> None:
    client = token_client(player)
    assert _status(client) == 200
    assert client.post("/v1/auth/logout").status_code == 204
    assert _status(client) == 401


def test_invalidating_sessions_refuses_the_tokens_at_once_in_its_own_process(
    make_player: Any, make_staff: Any, ttl_clock: Any
) -> None:
    from accounts.services import sessions_invalidate

    alice, bob = make_player(), make_player()
    alice_client, bob_client = token_client(alice), token_client(bob)
    assert (_status(alice_client), _status(bob_client)) == (200, 200)
    sessions_invalidate(user=alice, acting_user=make_staff(role="admin"), reason="leak")
    assert (_status(alice_client), _status(bob_client)) == (401, 200)
    sessions_invalidate(acting_user=make_staff(role="admin"), reason="leak")
    assert _status(bob_client) == 401


def test_a_refused_token_is_never_remembered(player: Any, ttl_clock: Any) -> None:
    _, token = AuthToken.objects.create(user=player)
    good, wrong = APIClient(), APIClient()
    good.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    wrong.credentials(HTTP_AUTHORIZATION=f"Token {token[:-1]}{'0' if token[-1] != '0' else '1'}")  # same key
    assert _status(good) == 200
    for _ in range(2):
        with CaptureQueriesContext(connection) as captured:
            assert _status(wrong) == 401
        assert any("knox_authtoken" in q["sql"] for q in captured.captured_queries)  # checked every time


def test_each_request_gets_its_own_user_and_token_objects(player: Any, ttl_clock: Any) -> None:
    from accounts.authentication import ExpiringTokenAuthentication

    _, token = AuthToken.objects.create(user=player)
    auth = ExpiringTokenAuthentication()
    first_user, first_token = auth.authenticate_credentials(token.encode())
    with CaptureQueriesContext(connection) as captured:
        second_user, second_token = auth.authenticate_credentials(token.encode())
    assert captured.captured_queries == []  # remembered
    assert second_user is not first_user and second_token is not first_token
    assert (second_user.pk, second_user.email, second_token.digest) == (player.pk, player.email, first_token.digest)
    assert second_token.user is second_user and second_token.expiry == first_token.expiry
    assert second_token.expiry is not None and second_token.expiry > timezone.now()


def test_tokens_sharing_a_key_are_told_apart_by_their_digest(player: Any, make_player: Any) -> None:
    """knox's candidates loop, on the one statement: a wrong digest is skipped, an expired candidate deleted."""
    from accounts.authentication import ExpiringTokenAuthentication

    other = make_player()
    _, token = AuthToken.objects.create(user=player)
    stale, _ = AuthToken.objects.create(user=other)
    fresh, _ = AuthToken.objects.create(user=other)
    key = token[:15]
    AuthToken.objects.filter(pk__in=[stale.pk, fresh.pk]).update(token_key=key)
    AuthToken.objects.filter(pk=stale.pk).update(expiry=timezone.now() - timedelta(seconds=1))
    user, _ = ExpiringTokenAuthentication().authenticate_credentials(token.encode())
    assert user.pk == player.pk
    wrong = token[:-1] + ("0" if token[-1] != "0" else "1")  # same key, no candidate's digest
    with pytest.raises(AuthenticationFailed):
        ExpiringTokenAuthentication().authenticate_credentials(wrong.encode())
    assert set(AuthToken.objects.filter(token_key=key).values_list("pk", flat=True)) == {
        AuthToken.objects.get(user=player).pk,
        fresh.pk,
    }  # every candidate was looked at: the expired one deleted
