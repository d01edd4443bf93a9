"""API token authentication: knox's expiring, hashed tokens, in at most one query per request.

knox's `TokenAuthentication` also walks every other token of the caller on each request to delete the
expired ones (one more query, and a delete per expired token, on a read). Here a request checks only
its own token: found by its key with the user joined (one query, its SQL written once per process from
the models rather than compiled by the ORM on every request: `_token_sql`), refused (and deleted) once
expired, compared in constant time to the stored digest. The caller's other expired tokens are deleted where
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
from hmac import compare_digest
from typing import Any

from django.db import connections, router
from django.utils import timezone
from drf_spectacular.contrib.knox_auth_token import KnoxTokenScheme
from knox.auth import TokenAuthentication
from knox.crypto import hash_token
from knox.models import AuthToken
from knox.settings import CONSTANTS, knox_settings
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


@functools.cache
def _token_sql(alias: str) -> tuple[str, tuple[tuple[int, Any], ...]]:
    """The token lookup (the candidates with this key, each with its user), written once per process.

    Returns the SQL and the fields' converters (position, converter) the ORM would have applied.
    """
    connection = connections[alias]
    quote = connection.ops.quote_name
    token_fields, user_fields = AuthToken._meta.concrete_fields, User._meta.concrete_fields

    def column(name: str) -> str:
        return str(AuthToken._meta.get_field(name).column)

    columns = [f"t.{quote(str(f.column))}" for f in token_fields] + [f"u.{quote(str(f.column))}" for f in user_fields]
    sql = (
        f"SELECT {', '.join(columns)} FROM {quote(AuthToken._meta.db_table)} t"
        f" JOIN {quote(User._meta.db_table)} u ON u.{quote(str(User._meta.pk.column))} = t.{quote(column('user'))}"
        f" WHERE t.{quote(column('token_key'))} = %s"
    )
    converters = tuple(
        (i, converter)
        for i, field in enumerate([*token_fields, *user_fields])
        for converter in field.get_db_converters(connection)
    )
    return sql, converters


def _token_candidates(token_key: str) -> list[AuthToken]:
    """The tokens with this key (knox's `token_key`, the token's first characters), each with its user."""
    alias = router.db_for_read(AuthToken)
    sql, converters = _token_sql(alias)
    with connections[alias].cursor() as cursor:
        cursor.execute(sql, [token_key])
        rows = cursor.fetchall()
    split = len(_names(AuthToken))
    found = []
    for row in rows:
        values = list(row)
        for i, converter in converters:
            values[i] = converter(values[i], None, connections[alias])
        auth_token = AuthToken.from_db(alias, _names(AuthToken), values[:split])
        auth_token.user = User.from_db(alias, _names(User), values[split:])
        found.append(auth_token)
    return found


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
        user, auth_token = self._from_database(token.decode("utf-8"), digest)
        _tokens.store(digest, started, _snapshot(auth_token))
        return user, auth_token

    def _from_database(self, token: str, digest: str) -> tuple[User, AuthToken]:
        """knox's check (`TokenAuthentication.authenticate_credentials`) on the candidates of one query."""
        for auth_token in _token_candidates(token[: CONSTANTS.TOKEN_KEY_LENGTH]):
            if self._cleanup_token(auth_token):
                continue
            if compare_digest(digest, auth_token.digest):
                if knox_settings.AUTO_REFRESH and auth_token.expiry:
                    self.renew_token(auth_token)
                user, auth_token = self.validate_user(auth_token)
                return user, auth_token
        raise exceptions.AuthenticationFailed("Invalid token.")

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
