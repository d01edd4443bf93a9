"""API token authentication: knox's expiring, hashed tokens, in one query per request.

knox's `TokenAuthentication` also walks every other token of the caller on each request to delete the
expired ones (one more query, and a delete per expired token, on a read). Here a request checks only
its own token: found by its key with the user joined (one query), refused (and deleted) once expired,
compared in constant time to the stored digest. The caller's other expired tokens are deleted where
tokens are issued (`accounts.services.token_issue`, at every login): an expired token is refused
whether or not its row is still there, so nothing is weakened. With `AUTO_REFRESH` off nothing is
written on a successful request.
"""

from __future__ import annotations

from django.utils import timezone
from drf_spectacular.contrib.knox_auth_token import KnoxTokenScheme
from knox.auth import TokenAuthentication
from knox.models import AuthToken
from knox.signals import token_expired


class ExpiringTokenAuthentication(TokenAuthentication):
    """knox token authentication that checks only the presented token's expiry."""

    def _cleanup_token(self, auth_token: AuthToken) -> bool:
        """Delete the presented token if it has expired and say so; leave the caller's other tokens."""
        if auth_token.expiry is not None and auth_token.expiry < timezone.now():
            username = auth_token.user.get_username()
            auth_token.delete()
            token_expired.send(sender=self.__class__, username=username, source="auth_token")
            return True
        return False


class ExpiringTokenScheme(KnoxTokenScheme):
    """The OpenAPI security scheme of these tokens: knox's (a bearer token in `Authorization: Token ...`)."""

    target_class = "accounts.authentication.ExpiringTokenAuthentication"
