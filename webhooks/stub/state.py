"""Thread-safe state behind the PSP stub.

It holds the failure modes set by tests, the idempotency store (first outcome
per endpoint kind and key), the objects created so far, and the request log.
"""

import copy
import threading
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Any

JSON = dict[str, Any]

KINDS = (
    "stripe_payment_intent",
    "stripe_payout",
    "stripe_transfer",
    "adyen_session",
    "adyen_transfer",
)
ANY_KIND = "*"
MODES = ("ok", "fail", "decline", "timeout")
DEFAULT_TIMEOUT_DELAY = 30.0
# The Stripe Connect account every stub knows from the start (demo data, the canary, the smoke test); tests
# add their own with `PSPStub.add_connected_account` or `POST /_stub/connected_accounts`.
STUB_CONNECTED_ACCOUNT = "acct_1PSPStubPlayer0001"
# Test destinations, like the PSPs' own test values (docs/ops/local_psp.md): with a payout delay, a payout to
# the first fails and a payout to the second stays pending for ever; any other destination is paid.
STUB_FAILING_ACCOUNT = "acct_1PSPStubFails0001"
STUB_PENDING_ACCOUNT = "acct_1PSPStubPending01"
STUB_FAILING_INSTRUMENT = "STUBINSTRUMENTFAIL01"
STUB_PENDING_INSTRUMENT = "STUBINSTRUMENTPEND01"
KNOWN_ACCOUNTS = (STUB_CONNECTED_ACCOUNT, STUB_FAILING_ACCOUNT, STUB_PENDING_ACCOUNT)


@dataclass
class Reply:
    """An HTTP response the stub is about to send, ``delay`` seconds late."""

    status: int
    body: JSON
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    html: str | None = None  # a page for a browser (the pay page) instead of ``body`` as JSON


@dataclass
class Created:
    """What executing a create produced: the reply and the object, if any."""

    reply: Reply
    obj: JSON | None = None


@dataclass
class ModeRule:
    """A failure mode for one endpoint kind; ``remaining=None`` means until reset."""

    mode: str
    remaining: int | None = None
    delay: float | None = None


@dataclass
class StoredOutcome:
    """The first outcome of a create, replayed for later uses of its key."""

    params: Any
    reply: Reply


@dataclass
class RecordedRequest:
    """One request the stub received and the response it sent."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any
    idempotency_key: str | None
    kind: str | None = None
    mode: str | None = None
    replayed: bool = False
    status: int | None = None
    response: JSON | None = None
    received_at: float = field(default_factory=time.time)


def validate_mode(kind: str, mode: str, times: int | None, delay: float | None) -> None:
    """Raise ``ValueError`` unless the arguments describe a valid mode rule."""
    if kind not in (*KINDS, ANY_KIND):
        raise ValueError(f"Unknown endpoint kind {kind!r}; expected one of {KINDS} or '*'.")
    if mode not in MODES:
        raise ValueError(f"Unknown mode {mode!r}; expected one of {MODES}.")
    if times is not None and (isinstance(times, bool) or not isinstance(times, int) or times < 1):
        raise ValueError(f"times must be a positive integer or None, not {times!r}.")
    if delay is not None and (isinstance(delay, bool) or not isinstance(delay, int | float) or delay < 0):
        raise ValueError(f"delay must be a non-negative number or None, not {delay!r}.")


class StubState:
    """Everything the stub remembers; every method is safe to call from any thread."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self._clear()

    def _clear(self) -> None:
        self._rules: dict[str, ModeRule] = {}
        self._outcomes: dict[tuple[str, str], StoredOutcome] = {}
        self._objects: dict[str, tuple[str, JSON]] = {}
        self._owners: dict[str, str | None] = {}  # object id -> the Stripe connected account it lives on
        self._submissions: Counter[str] = Counter()
        self._requests: list[RecordedRequest] = []
        self._calls: Counter[str] = Counter()
        self._in_flight: Counter[str] = Counter()
        self._max_in_flight: Counter[str] = Counter()
        self._accounts: set[str] = set(KNOWN_ACCOUNTS)
        self._balances: Counter[tuple[str, str]] = Counter()  # (connected account, currency) -> minor units

    # Stripe Connect: the connected accounts the platform may pay, and what each holds.

    def add_account(self, account: str) -> None:
        with self.lock:
            self._accounts.add(account)

    def has_account(self, account: str) -> bool:
        with self.lock:
            return account in self._accounts

    def credit(self, account: str, currency: str, amount: int) -> None:
        with self.lock:
            self._balances[(account, currency)] += amount

    def debit(self, account: str, currency: str, amount: int) -> bool:
        """Take ``amount`` from a connected account's balance; False (nothing taken) when it holds less."""
        with self.lock:
            if self._balances[(account, currency)] < amount:
                return False
            self._balances[(account, currency)] -= amount
            return True

    def balance(self, account: str, currency: str) -> int:
        with self.lock:
            return self._balances[(account, currency)]

    def reset(self) -> None:
        with self.lock:
            self._clear()

    def set_mode(self, kind: str, mode: str, times: int | None, delay: float | None) -> None:
        validate_mode(kind, mode, times, delay)
        with self.lock:
            self._rules[kind] = ModeRule(mode, times, delay)

    def take_mode(self, kind: str) -> ModeRule:
        """Return the rule that applies to the next ``kind`` create, using it up once."""
        with self.lock:
            key = kind if kind in self._rules else ANY_KIND
            rule = self._rules.get(key)
            if rule is None:
                return ModeRule("ok")
            if rule.remaining is not None:
                rule.remaining -= 1
                if rule.remaining == 0:
                    del self._rules[key]
            return replace(rule)

    def outcome(self, kind: str, idempotency_key: str) -> StoredOutcome | None:
        with self.lock:
            return self._outcomes.get((kind, idempotency_key))

    def commit(
        self, kind: str, idempotency_key: str | None, params: Any, created: Created, owner: str | None = None
    ) -> None:
        """Remember an executed create: its object (on ``owner``'s account), its key's outcome, one submission."""
        with self.lock:
            if created.obj is not None:
                self._objects[created.obj["id"]] = (kind, created.obj)
                self._owners[created.obj["id"]] = owner
            if idempotency_key:
                self._outcomes[(kind, idempotency_key)] = StoredOutcome(params, created.reply)
                self._submissions[idempotency_key] += 1

    def find_object(self, kind: str, object_id: str, owner: str | None | bool = True) -> JSON | None:
        """The object, if of ``kind`` (and on ``owner``'s account, unless ``owner`` is True: anywhere)."""
        with self.lock:
            stored_kind, obj = self._objects.get(object_id, (None, None))
            if stored_kind != kind or (owner is not True and self._owners.get(object_id) != owner):
                return None
            return copy.deepcopy(obj)

    def reverse_transfer(self, transfer_id: str) -> JSON:
        """Reverse a Stripe transfer in full (what the dashboard or `transfers.create_reversal` does): the money
        leaves the connected account's balance; KeyError if unknown."""
        with self.lock:
            kind, obj = self._objects[transfer_id]
            if kind != "stripe_transfer":
                raise KeyError(transfer_id)
            if not obj["reversed"]:
                self._balances[(obj["destination"], obj["currency"])] -= obj["amount"] - obj["amount_reversed"]
                obj["reversed"], obj["amount_reversed"] = True, obj["amount"]
            return copy.deepcopy(obj)

    def owner(self, object_id: str) -> str | None:
        with self.lock:
            return self._owners.get(object_id)

    def set_object_status(self, object_id: str, status: str) -> JSON:
        """Change a created object's ``status`` (the PSP's later verdict); KeyError if unknown."""
        with self.lock:
            kind, obj = self._objects[object_id]
            obj["status"] = status
            return copy.deepcopy(obj)

    def find_any(self, object_id: str) -> tuple[str, JSON] | None:
        """(kind, a copy of the object) for any object created here, None if unknown."""
        with self.lock:
            found = self._objects.get(object_id)
            return (found[0], copy.deepcopy(found[1])) if found is not None else None

    def update_object(self, object_id: str, expected: tuple[str | None, ...], changes: JSON) -> JSON | None:
        """Apply ``changes`` to an object whose ``status`` is one of ``expected`` and return a copy of it; None
        (nothing changed) when its status moved on meanwhile (e.g. a test set it by hand)."""
        with self.lock:
            _kind, obj = self._objects[object_id]
            if obj.get("status") not in expected:
                return None
            obj.update(copy.deepcopy(changes))
            return copy.deepcopy(obj)

    def objects(self, kind: str | None = None, owner: str | None | bool = True) -> list[JSON]:
        """Objects of ``kind`` (all kinds when None), on ``owner``'s account (any account when True)."""
        with self.lock:
            return [
                copy.deepcopy(obj)
                for object_id, (obj_kind, obj) in self._objects.items()
                if kind in (None, obj_kind) and (owner is True or self._owners.get(object_id) == owner)
            ]

    def submissions(self, idempotency_key: str) -> int:
        with self.lock:
            return self._submissions[idempotency_key]

    def calls(self, idempotency_key: str | None = None, path: str | None = None) -> int:
        """HTTP requests received (replays and refusals included) with this key and/or on this path (a prefix)."""
        with self.lock:
            return sum(
                1
                for r in self._requests
                if (idempotency_key is None or r.idempotency_key == idempotency_key)
                and (path is None or r.path.startswith(path))
            )

    def call_started(self, idempotency_key: str) -> None:
        """An API POST carrying this key arrived (replays and failures included); it is in flight until it ends."""
        with self.lock:
            self._calls[idempotency_key] += 1
            self._in_flight[idempotency_key] += 1
            self._max_in_flight[idempotency_key] = max(
                self._max_in_flight[idempotency_key], self._in_flight[idempotency_key]
            )

    def call_finished(self, idempotency_key: str) -> None:
        """The call was answered, or its client hung up."""
        with self.lock:
            self._in_flight[idempotency_key] -= 1

    def call_stats(self) -> dict[str, JSON]:
        """Per idempotency key: HTTP calls received, creates executed, calls in flight now and at most at once."""
        with self.lock:
            return {
                key: {
                    "calls": count,
                    "executed": self._submissions[key],
                    "in_flight": self._in_flight[key],
                    "max_in_flight": self._max_in_flight[key],
                }
                for key, count in self._calls.items()
            }

    def record(self, request: RecordedRequest) -> None:
        with self.lock:
            self._requests.append(request)

    def requests(self) -> list[RecordedRequest]:
        with self.lock:
            return list(self._requests)
