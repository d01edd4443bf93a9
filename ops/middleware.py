"""Request middleware: correlation ids, the request-duration histogram, maintenance mode."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponse

from .errors import problem_json_response
from .logging import new_correlation_id, set_correlation_id
from .metrics import HTTP_REQUEST_DURATION

Handler = Callable[[HttpRequest], HttpResponse]
REQUEST_ID_HEADER = "X-Request-ID"


class CorrelationIdMiddleware:
    """Bind a correlation id to the request (the caller's X-Request-ID, or a new one) and echo it."""

    def __init__(self, get_response: Handler) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        incoming = request.headers.get(REQUEST_ID_HEADER, "")
        correlation_id = incoming[:64] if incoming.isprintable() and incoming else new_correlation_id()
        set_correlation_id(correlation_id)
        request.correlation_id = correlation_id  # type: ignore[attr-defined]
        response = self.get_response(request)
        response[REQUEST_ID_HEADER] = correlation_id
        return response


class RequestMetricsMiddleware:
    """Observe `http_request_duration_seconds{method,path,status}` with the route pattern as path."""

    def __init__(self, get_response: Handler) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = self.get_response(request)
        match = getattr(request, "resolver_match", None)
        path = "/" + match.route if match is not None and match.route else "<unmatched>"
        status = "maintenance" if getattr(response, "maintenance", False) else str(response.status_code)
        HTTP_REQUEST_DURATION.labels(method=request.method, path=path, status=status).observe(
            time.perf_counter() - started
        )
        return response


class MaintenanceModeMiddleware:
    """While maintenance mode is on, refuse players' writes; operators, login, webhooks, health and reads stay up.

    Runs as `process_view`, after URL resolution, so a refusal is counted under its route. The 503 is a
    problem+json of type `maintenance` with `Retry-After`, and `http_request_duration_seconds` labels it
    `status="maintenance"` (not a server error: a `status=~"5.."` alert does not fire during a cutover).
    Staff are recognised by their admin session or their API token (the API's own authenticators). The
    switch is read through `ops.switches.switch_is_on_cached`: turned on, it refuses writes within
    `SWITCH_CACHE_S` (1 s) in every process.
    """

    GUARDED_PREFIXES = ("/v1/", "/simulate/")
    OPEN_PREFIXES = ("/v1/auth/",)  # login / logout: the cutover's smoke test and operators need them
    RETRY_AFTER_S = "120"

    def __init__(self, get_response: Handler) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_view(
        self, request: HttpRequest, view_func: Any, view_args: Any, view_kwargs: Any
    ) -> HttpResponse | None:
        if request.method in ("GET", "HEAD", "OPTIONS") or not request.path.startswith(self.GUARDED_PREFIXES):
            return None
        if request.path.startswith(self.OPEN_PREFIXES):
            return None
        from .models import Switch
        from .switches import switch_is_on_cached

        if not switch_is_on_cached(Switch.Name.MAINTENANCE) or _is_staff(request):
            return None
        response = problem_json_response(
            {
                "type": "maintenance",
                "title": "Maintenance in progress",
                "status": 503,
                "detail": "The platform is in maintenance mode; retry later.",
            }
        )
        response["Retry-After"] = self.RETRY_AFTER_S
        response.maintenance = True  # type: ignore[attr-defined]
        return response


def _is_staff(request: HttpRequest) -> bool:
    """Whether the caller is an operator: by the admin session, else by the API's authenticators."""
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        return bool(user.is_staff)
    from rest_framework.authentication import BaseAuthentication
    from rest_framework.exceptions import APIException
    from rest_framework.request import Request
    from rest_framework.settings import api_settings

    # The stubs type this setting as its dotted paths; `api_settings` has imported them into classes.
    classes: list[type[BaseAuthentication]] = api_settings.DEFAULT_AUTHENTICATION_CLASSES  # type: ignore[assignment]
    drf_request = Request(request, authenticators=[auth() for auth in classes])
    try:
        drf_user = drf_request.user
    except APIException:
        return False
    return bool(getattr(drf_user, "is_staff", False))
