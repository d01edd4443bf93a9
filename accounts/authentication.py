"""API token authentication: knox's expiring, hashed tokens, in at most one query per request.

knox's `TokenAuthentication` also walks every other token of the caller on each request to delete the
expired ones (one more query, and a delete per expired token, on a read). Here a request checks only
its own token: found by its key with the user joined (one query), refused (and deleted) once expired,
compared in constant time to the stored digest. The caller's other expired tokens are deleted where
tokens are issued (`accounts.services.token_issue`, at every login): an expired token is refused
whether or not its row is still there, so nothing is weakened. With `AUTO_REFRESH` off nothing is
written on a successful request.

A token that authenticated is remembered in this process for at most `AUTH_TOKEN_CACHE_S` seconds
(1 s by default; `ops.ttl`), keyed by its digest, so a client's requests within that time run no token
query. Its staleness is bounded and explicit: a token deleted (logout, revocation) or a user deactivated
in the database is still accepted by a process for at most the bound, then refused; a token past its
expiry is refused at once (the expiry is checked on every request, cached or not). Only successes are
remembered: a refused token reaches the database every time. A logout or `sessions_invalidate` forgets the
tokens it deletes in its own process at once (`tokens_forget`). Each request gets its own `User` and
`AuthToken` instances, built from the remembered row values (nothing mutable is shared between requests).
"""

from __future__ import annotations

import binascii
import functools
from typing import Any

from django.utils import timezone
from drf_spectacular.contrib.knox_auth_token import KnoxTokenScheme
from knox.auth import TokenAuthentication
from knox.crypto import hash_token
from knox.models import AuthToken
from knox.signals import token_expired
from rest_framework import exceptions

from ops.ttl import TtlCache

from .models import User

Row = tuple[Any, ...]
_tokens: TtlCache[tuple[Row, Row]] = TtlCache(name="auth_tokens", ttl_setting="AUTH_TOKEN_CACHE_S")


@functools.cache
def _names(model: Any) -> list[str]:
    return [field.attname for field in model._meta.concrete_fields]


def _snapshot(auth_token: AuthToken) -> tuple[Row, Row]:
    """The row values of a token and its user, to rebuild fresh instances from on later requests."""
    user = auth_token.user
    return (
        tuple(getattr(auth_token, name) for name in _names(AuthToken)),
        tuple(getattr(user, name) for name in _names(User)),
    )


def _restore(snapshot: tuple[Row, Row]) -> AuthToken:
    """New `AuthToken` and `User` instances from a snapshot (as if read from the database)."""
    token_row, user_row = snapshot
    auth_token = AuthToken.from_db("default", _names(AuthToken), token_row)
    auth_token.user = User.from_db("default", _names(User), user_row)
    return auth_token


def _expired(auth_token: AuthToken) -> bool:
    return auth_token.expiry is not None and auth_token.expiry < timezone.now()


def tokens_forget(*, digest: str | None = None, user_id: int | None = None) -> None:
    """Forget remembered tokens in this process: one (by digest), a user's, or all (neither given).

    Called where this process revokes tokens (logout, `sessions_invalidate`), so a revocation takes effect
    here at once; the other processes refuse the token within `AUTH_TOKEN_CACHE_S`.
    """
    token_names = _names(AuthToken)
    digest_at, user_at = token_names.index("digest"), token_names.index("user_id")

    def revoked(key: object, snapshot: tuple[Row, Row]) -> bool:
        token_row = snapshot[0]
        if digest is None and user_id is None:
            return True
        return token_row[digest_at] == digest or (user_id is not None and token_row[user_at] == user_id)

    _tokens.discard(revoked)


class ExpiringTokenAuthentication(TokenAuthentication):
    """knox token authentication that checks only the presented token's expiry, remembered for a second."""

    def authenticate_credentials(self, token: bytes) -> tuple[User, AuthToken]:
        """Authenticate from a token seen less than `AUTH_TOKEN_CACHE_S` ago, else from the database."""
        try:
            digest = hash_token(token.decode("utf-8"))
        except (TypeError, binascii.Error, UnicodeDecodeError) as exc:
            raise exceptions.AuthenticationFailed("Invalid token.") from exc
        cached = _tokens.get(digest)
        if cached is not None:
            auth_token = _restore(cached)
            if not _expired(auth_token):  # an expired one goes to the database path: deleted and refused
                user, auth_token = self.validate_user(auth_token)
                return user, auth_token
        started = _tokens.clock()
        user, auth_token = super().authenticate_credentials(token)
        _tokens.store(digest, started, _snapshot(auth_token))
        return user, auth_token

    def _cleanup_token(self, auth_token: AuthToken) -> bool:
        """Delete the presented token if it has expired and say so; leave the caller's other tokens."""
        if _expired(auth_token):
            username = auth_token.user.get_username()
            auth_token.delete()
            token_expired.send(sender=self.__class__, username=username, source="auth_token")
            return True
        return False


class ExpiringTokenScheme(KnoxTokenScheme):
    """The OpenAPI security scheme of these tokens: knox's (a bearer token in `Authorization: Token ...`)."""

    target_class = "accounts.authentication.ExpiringTokenAuthentication"
