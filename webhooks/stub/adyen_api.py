"""The Adyen half of the PSP stub: Checkout sessions and Transfers API objects and errors.

Checkout errors use Adyen's ``ServiceError`` body (``status``, ``errorCode``,
``message``, ``errorType``, ``pspReference``); Balance Platform (Transfers API)
errors use its problem-details body (``type``, ``title``, ``status``, ``detail``,
``errorCode``, ``requestId``, optional ``response``). The Adyen SDK raises
``AdyenAPIAuthenticationError`` for 401, ``AdyenAPIUnprocessableEntity`` for 422
and ``AdyenAPICommunicationError`` for 500. Error *codes* below are illustrative:
only the HTTP status and body shape are meant to match the real API.
"""

import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from .ids import adyen_reference, token
from .state import JSON, Created, Reply

SESSION_LIFETIME = timedelta(hours=1)
_PROBLEM_TYPES = {
    422: "https://docs.adyen.com/errors/unprocessable-entity",
    500: "https://docs.adyen.com/errors/general/internal",
}
_TRANSFER_FIELDS = (
    "amount",
    "category",
    "counterparty",
    "description",
    "priority",
    "reference",
    "referenceForBeneficiary",
)


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def session(request: JSON) -> JSON:
    """A Checkout session: the request echoed back plus id, sessionData and expiresAt."""
    return {
        **request,
        "id": f"CS{token(14, '0123456789ABCDEF')}",
        "expiresAt": (_now() + SESSION_LIFETIME).isoformat(),
        "mode": request.get("mode", "embedded"),
        "sessionData": f"Ab02b4c0!{token(120)}",
    }


def transfer(request: JSON, status: str = "authorised", reason: str = "approved") -> JSON:
    """A Transfers API transfer, as returned by ``POST /transfers``."""
    echoed = {name: request[name] for name in _TRANSFER_FIELDS if name in request}
    return {
        **echoed,
        "id": adyen_reference(),
        "accountHolder": {"id": f"AH{adyen_reference()}"},
        "balanceAccount": {"id": request.get("balanceAccountId")},
        "creationDate": _now().isoformat(),
        "direction": "outgoing",
        "reason": reason,
        "status": status,
    }


def service_error(status: int, error_code: str, message: str, error_type: str) -> Reply:
    """A Checkout-style ``ServiceError`` reply."""
    psp_reference = adyen_reference()
    body = {
        "status": status,
        "errorCode": error_code,
        "message": message,
        "errorType": error_type,
        "pspReference": psp_reference,
    }
    return Reply(status, body, {"pspReference": psp_reference})


def problem(status: int, title: str, detail: str, error_code: str, **extra: Any) -> Reply:
    """A Balance Platform problem-details reply."""
    request_id = adyen_reference()
    body = {
        "type": _PROBLEM_TYPES[status],
        "title": title,
        "status": status,
        "detail": detail,
        "errorCode": error_code,
        "requestId": request_id,
        **extra,
    }
    return Reply(status, body, {"pspReference": request_id})


def counterparty_problem(counterparty: Any) -> str:
    """Why a transfer's ``counterparty`` is not acceptable, or "" (one of ``transferInstrumentId``,
    ``balanceAccountId``, or ``bankAccount`` with ``accountHolder.fullName`` and ``accountIdentification``)."""
    if not isinstance(counterparty, dict) or not counterparty:
        return "Field 'counterparty' is required."
    given = [name for name in ("transferInstrumentId", "balanceAccountId", "bankAccount") if name in counterparty]
    if len(given) != 1 or len(counterparty) != 1:
        return "counterparty must contain exactly one of transferInstrumentId, balanceAccountId or bankAccount."
    value = counterparty[given[0]]
    if given[0] != "bankAccount":
        return "" if isinstance(value, str) and value.strip() else f"Field 'counterparty.{given[0]}' is empty."
    if not isinstance(value, dict):
        return "Field 'counterparty.bankAccount' must be an object."
    holder = value.get("accountHolder")
    if not isinstance(holder, dict) or not str(holder.get("fullName") or "").strip():
        return "Field 'counterparty.bankAccount.accountHolder.fullName' is required."
    identification = value.get("accountIdentification")
    if not isinstance(identification, dict) or not identification.get("type"):
        return "Field 'counterparty.bankAccount.accountIdentification.type' is required."
    if identification["type"] == "iban" and not str(identification.get("iban") or "").strip():
        return "Field 'counterparty.bankAccount.accountIdentification.iban' is required."
    return ""


def _ok(status: int, obj: JSON) -> Created:
    return Created(Reply(status, obj, {"pspReference": adyen_reference()}), obj)


class AdyenAPI:
    """Implements :class:`~webhooks.stub.routing.Provider` for Checkout and Transfers."""

    name = "adyen"

    def parse_body(self, raw: bytes) -> Any:
        try:
            return json.loads(raw or b"{}")
        except ValueError:
            return raw.decode("utf-8", "replace")

    def authorized(self, headers: Mapping[str, str]) -> bool:
        return bool(headers.get("x-api-key", "").strip())

    def unauthorized(self) -> Reply:
        return service_error(401, "000", "HTTP Status Response - Unauthorized", "security")

    def not_found(self, method: str, path: str) -> Reply:
        return service_error(404, "000", f"HTTP Status Response - Not Found ({method} {path})", "validation")

    def invalid(self, kind: str, params: JSON) -> Reply | None:
        """Transfers: the counterparty must name exactly one real destination (never an empty one)."""
        if kind != "adyen_transfer":
            return None
        problem_text = counterparty_problem(params.get("counterparty"))
        if problem_text:
            return problem(422, "Invalid transfer information provided", problem_text, "30_112")
        return None

    def create(self, kind: str, params: JSON) -> Created:
        if kind == "adyen_session":
            return _ok(201, session(params))
        return _ok(202, transfer(params))

    def decline(self, kind: str, params: JSON) -> Created:
        """Sessions: 422 validation error. Transfers: 422 whose ``response`` is the refused transfer."""
        if kind == "adyen_session":
            return Created(service_error(422, "000", "Session refused (PSP stub decline mode).", "validation"))
        refused = transfer(params, status="refused", reason="notEnoughBalance")
        detail = "Not enough balance in the balance account to make this transfer."
        return Created(problem(422, "Transfer declined", detail, "notEnoughBalance", response=refused), refused)

    def server_error(self, kind: str) -> Reply:
        """A 500 marked ``Transient-Error``: nothing was stored, retry with the same key."""
        if kind == "adyen_session":
            reply = service_error(500, "000", "An internal error occurred (PSP stub failure mode).", "internal")
        else:
            reply = problem(500, "Internal error", "An internal error occurred (PSP stub failure mode).", "00_500")
        reply.headers["Transient-Error"] = "true"
        return reply

    def replay(self, reply: Reply) -> Reply:
        return Reply(reply.status, reply.body, dict(reply.headers))

    def key_reused(self, idempotency_key: str) -> Reply:
        message = f"Idempotency key {idempotency_key!r} was already used with a different request body."
        return service_error(422, "704", message, "validation")

    def found(self, obj: JSON) -> Reply:
        return Reply(200, obj, {"pspReference": adyen_reference()})

    def listed(self, objects: list[JSON], query: dict[str, str]) -> Reply:
        """``GET /transfers``: the transfers, filtered by ``reference`` when given."""
        reference = query.get("reference")
        data = [obj for obj in objects if reference is None or obj.get("reference") == reference]
        return Reply(200, {"data": data, "_links": {}}, {"pspReference": adyen_reference()})

    def missing(self, kind: str, object_id: str) -> Reply:
        return service_error(404, "000", f"No {kind} with id {object_id!r}.", "validation")
