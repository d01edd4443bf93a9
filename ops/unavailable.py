"""A dependency down is a 503 with Retry-After, never a 500 page.

When the database or the broker cannot be reached (the driver's `OperationalError`/`InterfaceError`,
which Django re-raises as `django.db.OperationalError`/`InterfaceError`; kombu's `OperationalError`;
redis' `ConnectionError`/`TimeoutError`), a request to the API (`/v1/`) or a webhook (`/webhooks/`)
gets a `503 application/problem+json` of type `service-unavailable` with `Retry-After`; any other path
(the admin) gets a plain-text 503 with `Retry-After`. Nothing here touches the database.

Two doors lead here: the DRF exception handler (`ops.errors.problem_exception_handler`, for errors in
an API view, its authentication included) and the project's `handler500` (`server_error`, for errors
in a middleware or a plain Django view, such as the webhooks). Any other uncaught error on an API or
webhook path is a `500 application/problem+json` of type `server-error`; elsewhere Django's own page.
"""

from __future__ import annotations

import sys
from typing import Any

from django.http import HttpRequest, HttpResponse

from .errors import PROBLEM_CONTENT_TYPE, problem_json_response

RETRY_AFTER_S = 30
PROBLEM_PATHS = ("/v1/", "/webhooks/", "/simulate/")


def _database_errors() -> tuple[type[BaseException], ...]:
    from django.db import InterfaceError, OperationalError

    return (OperationalError, InterfaceError)


def _broker_errors() -> tuple[type[BaseException], ...]:
    errors: list[type[BaseException]] = []
    try:
        from kombu.exceptions import OperationalError as KombuOperationalError

        errors.append(KombuOperationalError)
    except ImportError:  # pragma: no cover - kombu comes with Celery
        pass
    try:
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import TimeoutError as RedisTimeoutError

        errors.extend((RedisConnectionError, RedisTimeoutError))
    except ImportError:  # pragma: no cover - redis is a runtime requirement
        pass
    return tuple(errors)


def unavailable_dependency(exc: BaseException | None) -> str | None:
    """'database' or 'broker' when `exc` (or an exception it was raised from) says one is unreachable."""
    seen = 0
    database, broker = _database_errors(), _broker_errors()
    while exc is not None and seen < 5:
        if isinstance(exc, database):
            return "database"
        if broker and isinstance(exc, broker):
            return "broker"
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return None


def unavailable_problem(dependency: str) -> dict[str, Any]:
    return {
        "type": "service-unavailable",
        "title": "Temporarily unavailable",
        "status": 503,
        "detail": f"The {dependency} is unreachable; the request was not completed. "
        f"Retry after {RETRY_AFTER_S} s (with the same Idempotency-Key where the endpoint takes one).",
    }


def wants_problem_json(request: HttpRequest) -> bool:
    return str(getattr(request, "path", "")).startswith(PROBLEM_PATHS)


def unavailable_response(request: HttpRequest, dependency: str) -> HttpResponse:
    """The 503 for a request that met an unreachable dependency: problem+json on the API, text elsewhere."""
    response: HttpResponse
    if wants_problem_json(request):
        response = problem_json_response(unavailable_problem(dependency))
    else:
        response = HttpResponse(
            f"503 Service Unavailable: the {dependency} is unreachable. Retry in {RETRY_AFTER_S} s.\n",
            status=503,
            content_type="text/plain; charset=utf-8",
        )
    response["Retry-After"] = str(RETRY_AFTER_S)
    return response


def server_error(request: HttpRequest) -> HttpResponse:
    """The project's handler500: Django calls it while handling the uncaught exception (sys.exc_info())."""
    exc = sys.exc_info()[1]
    dependency = unavailable_dependency(exc)
    if dependency is not None:
        return unavailable_response(request, dependency)
    if wants_problem_json(request):
        response = problem_json_response(
            {
                "type": "server-error",
                "title": "Server error",
                "status": 500,
                "detail": "The request failed on our side; it has been logged.",
            }
        )
        response["Content-Type"] = PROBLEM_CONTENT_TYPE
        return response
    from django.views.defaults import server_error as django_server_error

    return django_server_error(request)
