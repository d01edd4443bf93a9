"""Request middleware: correlation ids, the request-duration histogram, maintenance mode."""

from __future__ import annotations

import time
from collections.abc import Callable

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
        HTTP_REQUEST_DURATION.labels(
            method=request.method, path=path, status=str(response.status_code)
        ).observe(time.perf_counter() - started)
        return response


class MaintenanceModeMiddleware:
    """While maintenance mode is on, refuse writes on the player API; reads, health and admin stay up."""

    GUARDED_PREFIXES = ("/v1/", "/simulate/")

    def __init__(self, get_response: Handler) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.method not in ("GET", "HEAD", "OPTIONS") and request.path.startswith(self.GUARDED_PREFIXES):
            from .models import Switch
            from .switches import switch_is_on

            if switch_is_on(Switch.Name.MAINTENANCE):
                return problem_json_response({
                    "type": "maintenance",
                    "title": "Maintenance in progress",
                    "status": 503,
                    "detail": "The platform is in maintenance mode; retry later.",
                })
        return self.get_response(request)
