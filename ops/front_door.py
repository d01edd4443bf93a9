"""The front door: who the client is behind our proxies, caching of authenticated API answers,
and who may read `/metrics`."""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils.cache import patch_cache_control

Handler = Callable[[HttpRequest], HttpResponse]


def client_ip(request: HttpRequest) -> str:
    """Return the client's address: REMOTE_ADDR, or the one TRUSTED_PROXY_COUNT hops back in X-Forwarded-For.

    Only as many X-Forwarded-For entries as there are trusted proxies are believed (counted from the
    right, where our own proxies append); anything a client wrote further left is ignored.
    """
    remote = str(request.META.get("REMOTE_ADDR") or "")
    hops = int(settings.TRUSTED_PROXY_COUNT)
    if hops <= 0:
        return remote
    forwarded = [part.strip() for part in str(request.META.get("HTTP_X_FORWARDED_FOR") or "").split(",")]
    forwarded = [part for part in forwarded if part]
    if len(forwarded) < hops:
        return remote
    candidate = forwarded[-hops]
    try:
        return str(ipaddress.ip_address(candidate))
    except ValueError:
        return remote


class NoStoreForAuthenticatedApiMiddleware:
    """Mark every API answer to an authenticated caller `Cache-Control: no-store, private`.

    Balances, bets and withdrawals must never sit in a shared or browser cache. DRF sets the user on
    the underlying request after authentication, so this runs on the way out.
    """

    def __init__(self, get_response: Handler) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        user = getattr(request, "user", None)
        authenticated = bool(user is not None and user.is_authenticated)
        if request.path.startswith("/v1/") and (authenticated or "HTTP_AUTHORIZATION" in request.META):
            patch_cache_control(response, no_store=True, private=True, max_age=0)
        return response


def metrics_access_allowed(request: HttpRequest) -> bool:
    """Whether this request may read `/metrics`: the bearer token, an allowed address, or public metrics."""
    token = str(settings.METRICS_TOKEN)
    allowed_ips = list(settings.METRICS_ALLOWED_IPS)
    if token:
        header = str(request.META.get("HTTP_AUTHORIZATION") or "")
        scheme, _, presented = header.partition(" ")
        if scheme.lower() == "bearer" and presented and hmac.compare_digest(presented.strip(), token):
            return True
    if allowed_ips:
        address = client_ip(request)
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        for entry in allowed_ips:
            try:
                if ip in ipaddress.ip_network(entry, strict=False):
                    return True
            except ValueError:
                continue
    return not token and not allowed_ips and bool(settings.METRICS_PUBLIC)
