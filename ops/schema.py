"""OpenAPI helpers for drf-spectacular: limit/offset pages as the API returns them, and every refusal.

Every refusal of the API is an RFC 9457 problem document (`ops.errors`), so the schema documents them
as `application/problem+json` responses of one `Problem` component. `ProblemAutoSchema` (the project's
DEFAULT_SCHEMA_CLASS) lists on each operation the statuses it can answer with, and in each status's
description the problem `type`s:

- from how the view is built: credentials looked at (401), a permission beyond "signed in" or a CSRF
  check (403), a request body (400 validation, 415), throttles (429), a write under maintenance mode
  (503 `maintenance`), and always 503 (a dependency down) and 500 (`server-error`, problem+json too);
- from what the view method declares with `@problems(...)` (the `ApplicationError` classes its services
  raise) and what `ops.idempotency.idempotent` declares for the Idempotency-Key contract.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema_serializer, inline_serializer
from rest_framework import serializers
from rest_framework.authentication import SessionAuthentication
from rest_framework.permissions import AllowAny, IsAuthenticated

from .errors import PROBLEM_CONTENT_TYPE, ApplicationError
from .middleware import MaintenanceModeMiddleware
from .unavailable import PROBLEM_PATHS

PAGINATION_PARAMETERS = [
    OpenApiParameter("limit", OpenApiTypes.INT, description="Number of results to return per page."),
    OpenApiParameter("offset", OpenApiTypes.INT, description="The initial index from which to return the results."),
]


def paginated(item: type[serializers.Serializer], *, name: str) -> Any:
    """Return a serializer for a LimitOffsetPagination page of `item`: count, next, previous, results."""
    return inline_serializer(
        name=name,
        fields={
            "count": serializers.IntegerField(),
            "next": serializers.URLField(allow_null=True),
            "previous": serializers.URLField(allow_null=True),
            "results": item(many=True),
        },
    )


@extend_schema_serializer(component_name="Problem")
class ProblemSerializer(serializers.Serializer):
    """An RFC 9457 problem document: what every refusal of the API answers (`ops.errors`).

    `type` is the stable code to act on (`rounds/already-bet`, `ledger/insufficient-funds`, ...); the
    optional members are the extensions some refusals add. Other members may appear: ignore them.
    """

    type = serializers.CharField(help_text="Stable code of the refusal, e.g. `ledger/insufficient-funds`.")
    title = serializers.CharField(help_text="Short summary of the type.")
    status = serializers.IntegerField(help_text="The HTTP status code.")
    detail = serializers.CharField(help_text="What happened to this request, readable by a person.")
    instance = serializers.CharField(required=False, help_text="URI of this occurrence, when there is one.")
    # DRF's metaclass moves declared fields off the class, so this never shadows `Serializer.errors` at run time.
    errors = serializers.JSONField(  # type: ignore[assignment]
        required=False, help_text="`validation-error`: the invalid fields, each with its messages."
    )
    account = serializers.CharField(required=False, help_text="`ledger/insufficient-funds`: the account short.")
    balance_u = serializers.IntegerField(required=False, help_text="`ledger/insufficient-funds`: its balance.")
    required_u = serializers.IntegerField(required=False, help_text="`ledger/insufficient-funds`: what was needed.")
    reference = serializers.CharField(required=False, help_text="The ledger or webhook reference concerned.")
    provider = serializers.CharField(required=False, help_text="The payment rail concerned.")
    withdrawal_id = serializers.IntegerField(required=False, help_text="The withdrawal concerned.")
    state = serializers.CharField(required=False, help_text="The state the withdrawal or proposal is in.")
    proposal_id = serializers.IntegerField(required=False, help_text="The maker-checker proposal concerned.")


# A refusal the schema lists: an ApplicationError class, or (status, type) for DRF's and the handler's own.
Refusal = type[ApplicationError] | tuple[int, str]

VALIDATION_REFUSALS: tuple[Refusal, ...] = (
    (400, "validation-error"),
    (400, "malformed-request"),
    (415, "unsupported-media-type"),
)
AUTHENTICATION_REFUSALS: tuple[Refusal, ...] = ((401, "not-authenticated"), (401, "authentication-failed"))
PERMISSION_REFUSALS: tuple[Refusal, ...] = ((403, "forbidden"),)
THROTTLE_REFUSALS: tuple[Refusal, ...] = ((429, "throttled"),)
# On every operation: 503 for an unreachable database or broker (the exception handler, handler500).
ALWAYS_REFUSALS: tuple[Refusal, ...] = ((503, "service-unavailable"),)
# Anything else uncaught: handler500 answers problem+json under PROBLEM_PATHS (/v1/ ...), a page elsewhere.
SERVER_ERROR: tuple[Refusal, ...] = ((500, "server-error"),)
# Maintenance mode refuses players' writes under /v1/ (ops.middleware.MaintenanceModeMiddleware).
MAINTENANCE_REFUSALS: tuple[Refusal, ...] = ((503, "maintenance"),)

F = TypeVar("F", bound=Callable[..., Any])


def problems(*refusals: Refusal) -> Callable[[F], F]:
    """Declare the refusals a view method's services can raise, for its documented responses.

    Stacks with other `@problems` and with `ops.idempotency.idempotent` (which declares its own).
    """

    def decorate(method: F) -> F:
        method.problems = (*getattr(method, "problems", ()), *refusals)  # type: ignore[attr-defined]
        return method

    return decorate


def refusal_key(refusal: Refusal) -> tuple[int, str]:
    """(status, type) of a declared refusal."""
    if isinstance(refusal, tuple):
        return refusal
    return refusal.status, refusal.code


class ProblemAutoSchema(AutoSchema):
    """drf-spectacular's AutoSchema, with each operation's problem+json refusals among its responses."""

    def _get_response_bodies(self, direction: Any = "response") -> Any:
        responses = super()._get_response_bodies(direction)
        if direction != "response":
            return responses
        for status, types in sorted(self.problem_types().items()):
            code = str(status)
            described = self._get_response_for_code(ProblemSerializer, code, [PROBLEM_CONTENT_TYPE], direction)
            described["description"] = "A problem document (application/problem+json); `type` is one of: " + ", ".join(
                f"`{t}`" for t in sorted(types)
            )
            if code in responses:
                responses[code].setdefault("content", {}).update(described["content"])
                responses[code]["description"] = f"{responses[code].get('description', '')} {described['description']}"
            else:
                responses[code] = described
        return responses

    def problem_types(self) -> dict[int, set[str]]:
        """Status -> problem types this operation can answer with (see the module docstring)."""
        found: dict[int, set[str]] = {}
        for refusal in self._refusals():
            status, type_ = refusal_key(refusal)
            found.setdefault(status, set()).add(type_)
        return found

    def _refusals(self) -> Iterable[Refusal]:
        view, method = self.view, self.method.upper()
        yield from ALWAYS_REFUSALS
        if self.path.startswith(PROBLEM_PATHS):
            yield from SERVER_ERROR
        authenticators = list(getattr(view, "authentication_classes", []))
        permissions = list(getattr(view, "permission_classes", []))
        if authenticators:
            yield from AUTHENTICATION_REFUSALS
        safe = method in ("GET", "HEAD", "OPTIONS")
        # A permission class may say it lets any signed-in caller read (`reads_open_to_signed_in`), and name
        # the refusals it raises itself (`problems`) instead of DRF's generic 403 `forbidden`.
        checking = [
            p
            for p in permissions
            if p not in (AllowAny, IsAuthenticated) and not (safe and getattr(p, "reads_open_to_signed_in", False))
        ]
        for permission in checking:
            yield from getattr(permission, "problems", PERMISSION_REFUSALS)
        if not safe and any(issubclass(a, SessionAuthentication) for a in authenticators):
            yield from PERMISSION_REFUSALS  # the CSRF check of a session-authenticated write
        if method in ("POST", "PUT", "PATCH") and self.get_request_serializer() is not None:
            yield from VALIDATION_REFUSALS
        guarded = MaintenanceModeMiddleware.GUARDED_PREFIXES
        if (
            not safe
            and self.path.startswith(guarded)
            and not self.path.startswith(MaintenanceModeMiddleware.OPEN_PREFIXES)
        ):
            yield from MAINTENANCE_REFUSALS
        if getattr(view, "throttle_classes", None):
            yield from THROTTLE_REFUSALS
        handler = getattr(view, method.lower(), None)
        yield from getattr(handler, "problems", ())
