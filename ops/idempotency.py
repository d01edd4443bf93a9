"""The `Idempotency-Key` mechanism for POSTs that move money (DESIGN.md §4).

Same key and same request: the stored response is replayed with `Idempotent-Replayed: true`.
Same key and another request: 422, nothing runs. Same key while the first is still running: 409.
The handler's effects and the stored response commit in one transaction, so a crash cannot leave a
key that says "done" for work that was rolled back, nor work that was done without its key.

"Still running" is not a timeout: a request holds a PostgreSQL session-level advisory lock named after
its (user, key) on its own database connection from before it reserves the key until it has stored the
response (or released the key). The lock dies with the connection: a request whose process was killed,
whose connection was terminated, or whose database restarted leaves its key `in_progress` but unlocked,
and the next request with that key (same body) takes the lock, finds nobody running it and runs it again
at once (outcome `recovered`); its effects had rolled back with the dead request's transaction. While
the first request is alive, a duplicate cannot take the lock and gets 409 (outcome `in_progress`).

Each run marks the row with its own `created_at`; the response is stored, or the key released, only by
the run that still owns that mark (a conditional UPDATE). A request that lost its connection and came
back after another run took the key over stores nothing (outcome `superseded`): in the atomic case its
effects roll back with the transaction that failed to store them.

The bet (`POST /v1/rounds/{code}/bets`) keeps the same contract in one round trip instead: its whole work
is one database function (`rounds_bet_place`, `rounds.betting.bet_place_keyed`), which reserves the key
(its row inserted first, in the bet's own transaction: a concurrent duplicate waits on the unique index,
then replays), answers an existing row as `_reserve` does (a row this path left `in_progress` is taken over
only if nobody holds its advisory lock, else 409) and stores the answer, all before the one commit. The
view takes the key with `keyed_request` and counts outcomes with `keyed_outcome` (section below).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.db import DatabaseError, IntegrityError, connection, transaction
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.utils.encoders import JSONEncoder

from .canonical import CanonicalJsonError, canonical_sha256
from .errors import ApplicationError, problem_response
from .metrics import IDEMPOTENCY_EVENTS
from .models import IdempotencyKey
from .schema import problems

logger = logging.getLogger(__name__)
HEADER = "Idempotency-Key"
REPLAY_HEADER = "Idempotent-Replayed"
MAX_KEY_LENGTH = 255


class IdempotencyKeyMissing(ApplicationError):
    code = "idempotency/key-required"
    title = "Idempotency-Key header required"
    status = 400


class IdempotencyKeyInvalid(ApplicationError):
    code = "idempotency/key-invalid"
    title = "Idempotency-Key header invalid"
    status = 400


class IdempotencyKeyReused(ApplicationError):
    code = "idempotency/key-reused"
    title = "Idempotency-Key reused with a different request"
    status = 422


class IdempotencyInProgress(ApplicationError):
    code = "idempotency/in-progress"
    title = "A request with this Idempotency-Key is still being processed"
    status = 409


class IdempotencyBodyInvalid(ApplicationError):
    code = "idempotency/body-invalid"
    title = "Request body has no canonical JSON form"
    status = 400


def request_fingerprint(request: Request, scope: str) -> str:
    """Hash the route and the parsed body (RFC 8785 canonical JSON), so the same request always gives the same hash.

    A body with no canonical form (an integer beyond 2**53, a Decimal, a non-string key) is refused
    with a 400 before the key is reserved: nothing runs and nothing is stored.
    """
    try:
        return canonical_sha256(request.data, floats=True, prefix=f"{scope}\n".encode())
    except CanonicalJsonError as exc:
        raise IdempotencyBodyInvalid(f"The request body cannot be fingerprinted ({exc}); nothing was done.") from None


def legacy_request_fingerprint(request: Request, scope: str) -> str:
    """The fingerprint keys were stored with before RFC 8785 (sorted `json.dumps`), or "" if it cannot be computed.

    Only compared against: a retry, after the deploy that changed the hash, of a request whose key was
    stored before it must replay, not be refused as a different request. Once IdempotencyKey rows older
    than that deploy are gone, this fallback can go.
    """
    try:
        body = json.dumps(request.data, sort_keys=True, separators=(",", ":"), cls=JSONEncoder)
    except (TypeError, ValueError):
        return ""
    return hashlib.sha256(f"{scope}\n{body}".encode()).hexdigest()


def _header_key(request: Request) -> str:
    """Return the request's Idempotency-Key, or refuse a missing or oversized one (400)."""
    key = request.headers.get(HEADER, "").strip()
    if not key:
        raise IdempotencyKeyMissing(f"Send an {HEADER} header, unique for each new request.")
    if len(key) > MAX_KEY_LENGTH:
        raise IdempotencyKeyInvalid(f"{HEADER} is at most {MAX_KEY_LENGTH} characters.")
    return key


def _jsonable(data: Any) -> Any:
    return json.loads(json.dumps(data, cls=JSONEncoder))


def _replay(row: IdempotencyKey) -> Response:
    return replay_response(status=row.response_status or 0, body=row.response_body)


def replay_response(*, status: int, body: Any) -> Response:
    """Answer a stored response again, marked `Idempotent-Replayed: true` (a stored refusal as problem+json)."""
    IDEMPOTENCY_EVENTS.labels(outcome="replayed").inc()
    headers = {REPLAY_HEADER: "true"}
    if isinstance(body, dict) and "type" in body and "status" in body and status >= 400:
        return problem_response(body, headers=headers)
    return Response(body, status=status, headers=headers)


def _lock_id(user: Any, key: str) -> int:
    """The advisory lock's 64-bit id for one caller's key (a collision only makes a request wait: a 409)."""
    digest = hashlib.blake2b(f"idempotency:{user.pk}:{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


_held = threading.local()  # lock ids this thread's connection holds (a session lock is re-entrant: refuse)


def _held_ids() -> set[int]:
    if not hasattr(_held, "ids"):
        _held.ids = set()
    ids: set[int] = _held.ids
    return ids


def _try_lock(lock_id: int) -> bool:
    """Take the key's session-level advisory lock on this request's connection, without waiting."""
    if lock_id in _held_ids():
        return False  # this connection already runs a request with this key
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [lock_id])
        (acquired,) = cursor.fetchone()
    if acquired:
        _held_ids().add(lock_id)
    return bool(acquired)


def _unlock(lock_id: int) -> None:
    """Give the lock back; if the connection died meanwhile, the lock died with it."""
    _held_ids().discard(lock_id)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [lock_id])
    except DatabaseError:  # the connection is gone (and the lock with it), or unusable: drop it, lock and all
        logger.info("idempotency lock %s not given back on this connection; closing the connection", lock_id)
        connection.close()


def _reserve(
    *, user: Any, key: str, scope: str, fingerprint: str, legacy_fingerprint: Callable[[], str], locked: bool
) -> IdempotencyKey | Response:
    """Insert the key as in progress, or answer from the existing row (stored under this or the legacy hash).

    `locked`: this request holds the key's advisory lock, so no live request is running it. Without the
    lock another live request is: completed or mismatched keys are still answered, anything else is 409.
    """
    if locked:
        try:
            with transaction.atomic():
                row = IdempotencyKey.objects.create(user=user, key=key, scope=scope, request_hash=fingerprint)
            IDEMPOTENCY_EVENTS.labels(outcome="reserved").inc()
            return row
        except IntegrityError:
            pass
    existing = IdempotencyKey.objects.filter(user=user, key=key).first()
    if existing is None:  # the live holder has not stored its key yet
        IDEMPOTENCY_EVENTS.labels(outcome="in_progress").inc()
        raise IdempotencyInProgress("The first request with this key has not finished; retry later.")
    same_request = existing.request_hash == fingerprint
    if not same_request:
        legacy = legacy_fingerprint()
        same_request = bool(legacy) and existing.request_hash == legacy
    if not same_request or existing.scope != scope:
        IDEMPOTENCY_EVENTS.labels(outcome="mismatch").inc()
        raise IdempotencyKeyReused("This Idempotency-Key was already used for a different request; nothing was done.")
    if existing.state == IdempotencyKey.State.COMPLETED:
        return _replay(existing)
    if locked:  # in progress, but nobody alive holds it: its request died (killed, connection lost)
        mark = timezone.now()
        taken = IdempotencyKey.objects.filter(
            pk=existing.pk, state=IdempotencyKey.State.IN_PROGRESS, created_at=existing.created_at
        ).update(created_at=mark)
        if taken:
            existing.created_at = mark
            IDEMPOTENCY_EVENTS.labels(outcome="recovered").inc()
            logger.warning("Idempotency-Key %r of user %s: its first request died; running it again", key, user.pk)
            return existing
    IDEMPOTENCY_EVENTS.labels(outcome="in_progress").inc()
    raise IdempotencyInProgress("The first request with this key has not finished; retry later.")


class _Superseded(Exception):
    """This run no longer owns its key (it lost its connection and another run took the key over)."""


def _finalize(row: IdempotencyKey, response: Response) -> None:
    stored = IdempotencyKey.objects.filter(
        pk=row.pk, state=IdempotencyKey.State.IN_PROGRESS, created_at=row.created_at
    ).update(
        state=IdempotencyKey.State.COMPLETED,
        response_status=response.status_code,
        response_body=_jsonable(response.data),
        completed_at=timezone.now(),
    )
    if not stored:
        raise _Superseded()


def _release(row: IdempotencyKey) -> None:
    IdempotencyKey.objects.filter(pk=row.pk, state=IdempotencyKey.State.IN_PROGRESS, created_at=row.created_at).delete()
    IDEMPOTENCY_EVENTS.labels(outcome="released").inc()


def _superseded(row: IdempotencyKey) -> Response:
    """Answer a run that lost its key: the stored response if the other run finished, else 409."""
    IDEMPOTENCY_EVENTS.labels(outcome="superseded").inc()
    logger.error("Idempotency-Key %r: this run lost its key to a retry; its response was not stored", row.key)
    current = IdempotencyKey.objects.filter(pk=row.pk).first()
    if current is not None and current.state == IdempotencyKey.State.COMPLETED:
        return _replay(current)
    raise IdempotencyInProgress("A retry with this key took it over; ask again for its result.")


def idempotent_call(*, request: Request, scope: str, handler: Callable[[], Response], atomic: bool = True) -> Response:
    """Run `handler` at most once per (user, Idempotency-Key), replaying its stored response.

    With `atomic` (the default) the handler's writes and the stored response commit together. A
    handler that calls an outside service (a PSP) passes `atomic=False` and manages its own short
    transactions, so no transaction is open during the call; the response is stored after it.
    """
    key = _header_key(request)
    fingerprint = request_fingerprint(request, scope)
    user = request.user
    lock_id = _lock_id(user, key)
    try:
        locked = _try_lock(lock_id)
    except Exception:
        IDEMPOTENCY_EVENTS.labels(outcome="reserve_error").inc()
        raise
    try:
        return _run(
            request=request,
            user=user,
            key=key,
            scope=scope,
            fingerprint=fingerprint,
            locked=locked,
            handler=handler,
            atomic=atomic,
        )
    finally:
        if locked:
            _unlock(lock_id)


def _run(
    *,
    request: Request,
    user: Any,
    key: str,
    scope: str,
    fingerprint: str,
    locked: bool,
    handler: Callable[[], Response],
    atomic: bool,
) -> Response:
    try:
        reserved = _reserve(
            user=user,
            key=key,
            scope=scope,
            fingerprint=fingerprint,
            legacy_fingerprint=lambda: legacy_request_fingerprint(request, scope),
            locked=locked,
        )
    except ApplicationError:
        raise
    except Exception:
        IDEMPOTENCY_EVENTS.labels(outcome="reserve_error").inc()
        raise
    if isinstance(reserved, Response):
        return reserved
    row = reserved
    try:
        with transaction.atomic() if atomic else contextlib.nullcontext():
            response = handler()
            if response.status_code >= 500:
                raise _TransientResponse(response)
            _finalize_or_count(row, response)
    except _Superseded:
        return _superseded(row)
    except _TransientResponse as transient:
        _release(row)
        return transient.response
    except ApplicationError as error:
        if error.status >= 500:
            _release(row)
            raise
        response = problem_response(error.problem())
        try:
            _finalize_or_count(row, response)
        except _Superseded:
            return _superseded(row)
    except Exception:
        _release(row)
        raise
    IDEMPOTENCY_EVENTS.labels(outcome="completed").inc()
    return response


def _finalize_or_count(row: IdempotencyKey, response: Response) -> None:
    try:
        _finalize(row, response)
    except _Superseded:
        raise
    except Exception:
        IDEMPOTENCY_EVENTS.labels(outcome="finalize_error").inc()
        raise


class _TransientResponse(Exception):
    def __init__(self, response: Response) -> None:
        super().__init__("transient response")
        self.response = response


# --- Keys kept by the handler's own database call ---------------------------------------------------
# A handler whose whole work is one database function call (`rounds.betting.bet_place_keyed`: the bet) keeps
# the key inside that call, in the same transaction as the work, with one commit: the function inserts the
# key's row first (a concurrent request with the same key waits on the unique index, then finds the row and
# replays it), answers an existing row as `_reserve` does, and stores the answer. The handler takes the
# key and the request's identity from `keyed_request`, and reports its outcome with `keyed_outcome`.


@dataclass(frozen=True)
class KeyedRequest:
    """One request's Idempotency-Key and what identifies the request, for a handler that stores its own answer."""

    key: str
    scope: str
    fingerprint: str
    legacy_fingerprint: str  # "" when the legacy hash cannot be computed
    lock_id: int  # the advisory lock `idempotent_call` holds for this key (a request of that path in flight)


def keyed_request(request: Request, scope: str) -> KeyedRequest:
    """Return the request's key and fingerprints; refuse a missing or oversized key or an unhashable body (400)."""
    key = _header_key(request)
    return KeyedRequest(
        key=key,
        scope=scope,
        fingerprint=request_fingerprint(request, scope),
        legacy_fingerprint=legacy_request_fingerprint(request, scope),
        lock_id=_lock_id(request.user, key),
    )


def keyed_outcome(outcome: str) -> None:
    """Count one outcome of a keyed handler (`idempotency_events_total{outcome}`); refuse the contract's refusals.

    `reserved`, `completed`, `recovered`, `released` are counted; `mismatch` raises IdempotencyKeyReused and `in_progress`
    IdempotencyInProgress, as `idempotent_call` would answer them. A replay is answered by `replay_response`.
    """
    IDEMPOTENCY_EVENTS.labels(outcome=outcome).inc()
    if outcome == "mismatch":
        raise IdempotencyKeyReused("This Idempotency-Key was already used for a different request; nothing was done.")
    if outcome == "in_progress":
        raise IdempotencyInProgress("The first request with this key has not finished; retry later.")


def keyed_refusal_store(*, key_id: int, problem: dict[str, Any]) -> None:
    """Store a refusal as the answer of a key its handler reserved (inside the handler's transaction)."""
    IdempotencyKey.objects.filter(pk=key_id).update(
        state=IdempotencyKey.State.COMPLETED,
        response_status=problem["status"],
        response_body=_jsonable(problem),
        completed_at=timezone.now(),
    )


def keyed_existing_answer(*, user: Any, keyed: KeyedRequest) -> Response | None:
    """Answer from the key's row as `_reserve` does when it exists (replay, or refuse), else None.

    For a keyed handler that refuses its input before its call (a 400 on the body): `idempotent_call` looks the
    key up before the handler runs, so a key already used answers the same here.
    """
    existing = IdempotencyKey.objects.filter(user=user, key=keyed.key).first()
    if existing is None:
        return None
    same = existing.request_hash in (keyed.fingerprint, keyed.legacy_fingerprint or keyed.fingerprint)
    if not same or existing.scope != keyed.scope:
        keyed_outcome("mismatch")
    if existing.state != IdempotencyKey.State.COMPLETED:
        keyed_outcome("in_progress")
    return _replay(existing)


# The refusals of the contract itself, for the schema (`ops.schema.problems`): the key, and the body it fingerprints.
IDEMPOTENCY_REFUSALS = (
    IdempotencyKeyMissing,
    IdempotencyKeyInvalid,
    IdempotencyKeyReused,
    IdempotencyInProgress,
    IdempotencyBodyInvalid,
    (400, "malformed-request"),
    (415, "unsupported-media-type"),
)


def idempotency_key_parameter(*, required: bool) -> OpenApiParameter:
    """The `Idempotency-Key` header as the schema shows it (a generated client must send it when required)."""
    description = (
        f"Unique for each new request (at most {MAX_KEY_LENGTH} characters). A retry with the same key and body "
        "replays the first answer (`Idempotent-Replayed: true`); the same key with another body is refused (422)."
    )
    if not required:
        description += " Optional here: without one, repeating the request is refused by the state machine (409)."
    return OpenApiParameter(HEADER, str, OpenApiParameter.HEADER, required=required, description=description)


def idempotent(
    view_method: Callable[..., Response] | None = None, *, atomic: bool = True, required: bool = True
) -> Any:
    """Decorate an APIView's `post` so it obeys the Idempotency-Key contract, and say so in the schema.

    `@idempotent` runs the view in one transaction with its stored response; `@idempotent(atomic=False)`
    is for views whose service calls an outside system and manages its own transactions.
    `@idempotent(required=False)` honours a key when one is sent and runs the view as is without one
    (state transitions, safe to repeat: a repeat is refused by the state machine).
    The header parameter and the contract's refusals are declared here, where the key is enforced, so
    the schema cannot drift from it.
    """

    def decorate(method: Callable[..., Response]) -> Callable[..., Response]:
        @functools.wraps(method)
        def wrapper(self: Any, request: Request, *args: Any, **kwargs: Any) -> Response:
            if not required and not request.headers.get(HEADER, "").strip():
                return method(self, request, *args, **kwargs)
            scope = f"{request.method} {request.path}"[:200]
            return idempotent_call(
                request=request,
                scope=scope,
                atomic=atomic,
                handler=lambda: method(self, request, *args, **kwargs),
            )

        return _documented(wrapper, required=required)

    return decorate(view_method) if view_method is not None else decorate


def _documented(method: Callable[..., Response], *, required: bool) -> Callable[..., Response]:
    documented = extend_schema(parameters=[idempotency_key_parameter(required=required)])(method)
    refusals = [r for r in IDEMPOTENCY_REFUSALS if required or r is not IdempotencyKeyMissing]
    return problems(*refusals)(documented)


def idempotency_documented(view_method: Callable[..., Response]) -> Callable[..., Response]:
    """Say in the schema that a view's `post` obeys the Idempotency-Key contract, as `@idempotent` says it.

    For a view that keeps the key inside its own database call (`keyed_request`); nothing is wrapped.
    """
    return _documented(view_method, required=True)
