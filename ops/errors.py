"""One error contract for the whole API.

Services raise subclasses of `ApplicationError`, each with a stable `code` and an HTTP status. The
DRF exception handler below turns them, and DRF's own errors, into RFC 9457 problem documents
(`application/problem+json` with `type`, `title`, `status`, `detail`).
"""

from __future__ import annotations

import re
from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import Http404, JsonResponse
from rest_framework import exceptions as drf_exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

PROBLEM_CONTENT_TYPE = "application/problem+json"


class ApplicationError(Exception):
    """A refusal a caller can act on: stable code, HTTP status, readable detail."""

    code = "error"
    status = 400
    title = "Request refused"

    def __init__(self, detail: str = "", *, extra: dict[str, Any] | None = None) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.extra = extra or {}

    def problem(self) -> dict[str, Any]:
        """Return the RFC 9457 body for this error."""
        body: dict[str, Any] = {
            "type": self.code,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        body.update(self.extra)
        return body


class ValidationFailed(ApplicationError):
    code = "validation-error"
    title = "Invalid input"
    status = 400


class NotFound(ApplicationError):
    code = "not-found"
    title = "Not found"
    status = 404


class Conflict(ApplicationError):
    code = "conflict"
    title = "Conflict"
    status = 409


class Forbidden(ApplicationError):
    code = "forbidden"
    title = "Forbidden"
    status = 403


class ServiceUnavailable(ApplicationError):
    code = "service-unavailable"
    title = "Temporarily unavailable"
    status = 503


def problem_response(body: dict[str, Any], *, headers: dict[str, str] | None = None) -> Response:
    """Build a DRF response carrying a problem document."""
    return Response(body, status=body["status"], content_type=PROBLEM_CONTENT_TYPE, headers=headers)


def problem_json_response(body: dict[str, Any]) -> JsonResponse:
    """Build a plain Django response carrying a problem document (for non-DRF views)."""
    return JsonResponse(body, status=body["status"], content_type=PROBLEM_CONTENT_TYPE)


_DRF_CODES = {
    drf_exceptions.ValidationError: "validation-error",
    drf_exceptions.ParseError: "malformed-request",
    drf_exceptions.NotAuthenticated: "not-authenticated",
    drf_exceptions.AuthenticationFailed: "authentication-failed",
    drf_exceptions.PermissionDenied: "forbidden",
    drf_exceptions.NotFound: "not-found",
    drf_exceptions.MethodNotAllowed: "method-not-allowed",
    drf_exceptions.UnsupportedMediaType: "unsupported-media-type",
    drf_exceptions.Throttled: "throttled",
}


def _drf_problem(exc: drf_exceptions.APIException) -> dict[str, Any]:
    code = next((c for cls, c in _DRF_CODES.items() if isinstance(exc, cls)), "error")
    # A default detail with a placeholder (415's `"{media_type}"`, 405's `"{method}"`) is no title: drop it.
    title = re.sub(r' ?"\{\w+\}"', "", str(exc.default_detail))
    body: dict[str, Any] = {"type": code, "title": title, "status": exc.status_code}
    if isinstance(exc, drf_exceptions.ValidationError):
        body["detail"] = "One or more fields are invalid."
        body["errors"] = exc.detail
    else:
        body["detail"] = str(exc.detail)
    return body


def problem_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """Render every API error as application/problem+json; an unreachable database or broker is a 503."""
    if isinstance(exc, ApplicationError):
        return problem_response(exc.problem())
    from .unavailable import RETRY_AFTER_S, unavailable_dependency, unavailable_problem

    dependency = unavailable_dependency(exc)
    if dependency is not None:
        from rest_framework.views import set_rollback

        set_rollback()
        return problem_response(unavailable_problem(dependency), headers={"Retry-After": str(RETRY_AFTER_S)})
    if isinstance(exc, Http404):
        exc = drf_exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = drf_exceptions.PermissionDenied()
    if isinstance(exc, drf_exceptions.APIException):
        response = drf_exception_handler(exc, context)
        headers = {
            k: v
            for k, v in (response.headers.items() if response is not None else [])
            if k.lower() in ("www-authenticate", "retry-after", "allow")
        }
        return problem_response(_drf_problem(exc), headers=headers)
    return None


class NotAPlayer(Forbidden):
    """Staff are never players: they hold no balance, bet, deposit or withdraw."""

    code = "accounts/not-a-player"
    title = "Operator accounts cannot play"
