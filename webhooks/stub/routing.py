"""Which stub endpoint an incoming request is for, and what a provider must implement.

Routes match on the *end* of the path, so any base URL prefix works: the Stripe
SDK appends ``/v1/...`` to its ``api`` base address and the Adyen SDK appends
``/sessions`` or ``/transfers`` to each API object's ``baseUrl``.
"""

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from .state import JSON, Created, Reply


@dataclass(frozen=True)
class Incoming:
    """A request as read off the socket."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    raw: bytes

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";")[0].strip().lower()

    @property
    def idempotency_key(self) -> str | None:
        return self.headers.get("idempotency-key") or None


@dataclass(frozen=True)
class Route:
    """One PSP endpoint: ``create`` executes a POST, ``retrieve`` returns an object, ``list`` several."""

    provider: str
    kind: str
    action: str
    method: str
    pattern: re.Pattern[str]


def _route(provider: str, kind: str, action: str, method: str, suffix: str) -> Route:
    return Route(provider, kind, action, method, re.compile(f"{suffix}$"))


ROUTES = (
    _route("stripe", "stripe_payment_intent", "create", "POST", r"/v1/payment_intents"),
    _route("stripe", "stripe_payment_intent", "retrieve", "GET", r"/v1/payment_intents/(?P<id>[^/]+)"),
    _route("stripe", "stripe_payout", "create", "POST", r"/v1/payouts"),
    _route("stripe", "stripe_payout", "retrieve", "GET", r"/v1/payouts/(?P<id>[^/]+)"),
    _route("stripe", "stripe_payout", "list", "GET", r"/v1/payouts"),
    _route("stripe", "stripe_transfer", "create", "POST", r"/v1/transfers"),
    _route("stripe", "stripe_transfer", "retrieve", "GET", r"/v1/transfers/(?P<id>[^/]+)"),
    _route("stripe", "stripe_transfer", "list", "GET", r"/v1/transfers"),
    _route("adyen", "adyen_session", "create", "POST", r"/sessions"),
    _route("adyen", "adyen_transfer", "create", "POST", r"/transfers"),
    _route("adyen", "adyen_transfer", "retrieve", "GET", r"/transfers/(?P<id>[^/]+)"),
    _route("adyen", "adyen_transfer", "list", "GET", r"/transfers"),
)


def find_route(provider: str, method: str, path: str) -> tuple[Route, str | None] | None:
    """Return the matching route and the object id in its path, if any."""
    for route in ROUTES:
        if route.provider != provider or route.method != method:
            continue
        match = route.pattern.search(path)
        if match:
            return route, match.groupdict().get("id")
    return None


class Provider(Protocol):
    """The provider-specific half of the stub: wire formats, objects and errors."""

    name: str

    def parse_body(self, raw: bytes) -> Any: ...

    def authorized(self, headers: Mapping[str, str]) -> bool: ...

    def unauthorized(self) -> Reply: ...

    def not_found(self, method: str, path: str) -> Reply: ...

    def invalid(self, kind: str, params: JSON) -> Reply | None: ...

    def create(self, kind: str, params: JSON) -> Created: ...

    def decline(self, kind: str, params: JSON) -> Created: ...

    def server_error(self, kind: str) -> Reply: ...

    def replay(self, reply: Reply) -> Reply: ...

    def key_reused(self, idempotency_key: str) -> Reply: ...

    def found(self, obj: JSON) -> Reply: ...

    def listed(self, objects: list[JSON], query: dict[str, str]) -> Reply: ...

    def missing(self, kind: str, object_id: str) -> Reply: ...
