"""The canary money loop (go-live runbook, T-0), over real HTTP against a running deployment.

deposit -> withdrawal request -> operator approval -> payout submitted (by the worker) -> paid ->
ledger settlement (held back to where it was, available lower by exactly the withdrawal), then a
PASS/FAIL report written from `docs/ops/canary_report_template.md`.

With `simulate` (never in production) the deposit arrives as a signed custody webhook and the payout
confirmation as a signed Adyen Transfers webhook, both sent here over HTTP and signed with the kernel's
`ops.inbound` (the same functions that verify them; no test tooling is imported); otherwise the canary
waits for the real ones.

The withdrawal goes to `destination`, in its rail's declared shape (required; see
`payouts.providers.PayoutProvider.destination_shape`): a canary account of the operator's own.

On chain (`provider="chain"`, with a checksummed `destination` address): the canary shows the player's
deposit address and waits until a deposit of the canary amount sent there on chain is credited (after the
confirmations), then withdraws to `destination` and waits until the transfer is confirmed on chain.
Nothing is simulated on chain.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests
from django.conf import settings

from ledger.currencies import get_currency
from ledger.reconciliation import ledger_breaches
from ops import inbound

TEMPLATE = Path(settings.BASE_DIR) / "docs" / "ops" / "canary_report_template.md"


class CanaryFailed(Exception):
    """One step failed; the loop stops there."""


@dataclass
class Step:
    name: str
    result: str
    at: str
    detail: str


@dataclass
class CanaryRun:
    base_url: str
    player_email: str
    player_password: str
    operator_email: str
    operator_password: str
    amount_u: int
    currency: str
    provider: str
    simulate: bool
    timeout_s: float = 60.0
    destination: dict[str, Any] | None = None
    notify: Callable[[str], None] = field(default=lambda message: None)
    steps: list[Step] = field(default_factory=list)
    ledger_note: str = "not reached"
    started_at: str = field(default_factory=lambda: _now())

    @property
    def passed(self) -> bool:
        return bool(self.steps) and all(s.result == "PASS" for s in self.steps) and len(self.steps) == 7


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")


class _Api:
    def __init__(self, base_url: str, timeout: float) -> None:
        self.base = base_url.rstrip("/")
        self.timeout = timeout
        self.token = ""
        self.user_id = ""

    def login(self, email: str, password: str) -> None:
        response = self.post("/v1/auth/login", {"email": email, "password": password}, expect=(200,))
        self.token = response.json()["token"]
        self.user_id = response.json()["user_id"]

    def headers(self, idempotency_key: str | None = None) -> dict[str, str]:
        headers = {"Authorization": f"Token {self.token}"} if self.token else {}
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        return headers

    def get(self, path: str) -> Any:
        response = requests.get(self.base + path, headers=self.headers(), timeout=self.timeout)
        if response.status_code != 200:
            raise CanaryFailed(f"GET {path} answered {response.status_code}: {response.text[:200]}")
        return response.json()

    def post(self, path: str, body: Any, *, expect: tuple[int, ...], key: str | None = None) -> requests.Response:
        response = requests.post(self.base + path, json=body, headers=self.headers(key), timeout=self.timeout)
        if response.status_code not in expect:
            raise CanaryFailed(f"POST {path} answered {response.status_code}: {response.text[:300]}")
        return response


def _wallet(api: _Api, currency: str) -> tuple[int, int]:
    for row in api.get("/v1/wallet")["balances"]:
        if row["currency"] == currency:
            return row["available_u"], row["held_u"]
    return 0, 0


def _post_signed(url: str, body: bytes, headers: dict[str, str]) -> requests.Response:
    return requests.post(url, data=body, headers={"Content-Type": "application/json", **headers}, timeout=10)


def _send_custody_deposit(url: str, payload: dict[str, Any]) -> requests.Response:
    """Deliver a custody deposit signed with CUSTODY_WEBHOOK_KEY, as the custodian would (simulation only)."""
    body = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode("utf-8")
    signature = inbound.hmac_sha256_hex(body, settings.CUSTODY_WEBHOOK_KEY)
    return _post_signed(url, body, {"X-Webhook-Signature": signature})


def _send_adyen_transfer_booked(url: str, transfer: dict[str, Any]) -> requests.Response:
    """Deliver Adyen's `balancePlatform.transfer.updated` (booked) signed with ADYEN_HMAC_KEY (simulation only)."""
    webhook = {
        "data": {"category": "bank", "direction": "outgoing", **transfer, "reason": "approved", "status": "booked"},
        "environment": "test",
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "type": "balancePlatform.transfer.updated",
    }
    body = json.dumps(webhook, separators=(",", ":")).encode("utf-8")
    return _post_signed(url, body, {"HmacSignature": inbound.adyen_payload_signature(body, settings.ADYEN_HMAC_KEY)})


def _poll(until: Callable[[], Any], timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = until()
        if value:
            return value
        if time.monotonic() > deadline:
            raise CanaryFailed(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(0.5)


def canary_run(run: CanaryRun) -> CanaryRun:
    """Run the loop, recording each step; stop at the first failure."""
    if run.provider == "chain" and not (run.destination or {}).get("address"):
        raise CanaryFailed("an on-chain canary needs a destination address (--destination-address)")
    if not run.destination:
        raise CanaryFailed(
            "the canary withdrawal needs a destination in its rail's shape (--destination JSON): "
            'stripe {"connected_account": "acct_..."}, adyen {"transfer_instrument_id": "..."}'
        )
    if run.simulate and settings.ENVIRONMENT == "production":
        raise CanaryFailed("simulation is refused in production: make a real deposit and let the PSP confirm")
    player, operator = _Api(run.base_url, 15), _Api(run.base_url, 15)
    state: dict[str, Any] = {}

    def record(name: str, action: Callable[[], str]) -> None:
        try:
            detail = action()
        except (CanaryFailed, requests.RequestException, KeyError, ValueError) as exc:
            run.steps.append(Step(name, "FAIL", _now(), str(exc)))
            raise CanaryFailed(f"{name}: {exc}") from exc
        run.steps.append(Step(name, "PASS", _now(), detail))

    def login() -> str:
        player.login(run.player_email, run.player_password)
        operator.login(run.operator_email, run.operator_password)
        state["start"] = _wallet(player, run.currency)
        return f"player {run.player_email}, operator {run.operator_email}; start available/held {state['start']}"

    def deposit() -> str:
        start_available = state["start"][0]
        if run.provider == "chain":
            address = player.get("/v1/chain/deposit-address")["address"]
            run.notify(f"waiting for a deposit of {run.amount_u} {run.currency} units on chain to {address}")
            _poll(
                lambda: _wallet(player, run.currency)[0] >= start_available + run.amount_u,
                run.timeout_s,
                f"an on-chain deposit to {address} to be confirmed and credited",
            )
            state["deposited"] = run.amount_u
            return f"on-chain deposit to {address} credited after confirmations"
        if run.simulate:
            reference = f"canary-deposit-{uuid.uuid4()}"
            response = _send_custody_deposit(
                f"{player.base}/webhooks/deposits",
                {"reference": reference, "user_id": player.user_id, "amount_u": run.amount_u, "currency": run.currency},
            )
            if response.status_code >= 300:
                raise CanaryFailed(f"deposit webhook answered {response.status_code}: {response.text[:200]}")
            _poll(
                lambda: _wallet(player, run.currency)[0] >= start_available + run.amount_u,
                run.timeout_s,
                "the deposit to be credited",
            )
            state["deposited"] = run.amount_u
            return f"Tx {reference} credited"
        if start_available < run.amount_u:
            raise CanaryFailed("no simulation: deposit the canary amount with the PSP first, then rerun")
        state["deposited"] = 0
        return "real deposit already credited"

    def withdraw() -> str:
        body: dict[str, Any] = {
            "amount_u": run.amount_u,
            "currency": run.currency,
            "provider": run.provider,
            "destination": run.destination,
        }
        response = player.post("/v1/withdrawals", body, expect=(201,), key=f"canary-{uuid.uuid4()}")
        state["withdrawal"] = response.json()["id"]
        return f"withdrawal {state['withdrawal']} requested"

    def approve() -> str:
        operator.post(f"/v1/withdrawals/{state['withdrawal']}/approve", {"reason": "go-live canary"}, expect=(200,))
        return f"approved by {run.operator_email}"

    def submitted() -> str:
        def sent() -> Any:
            w = player.get(f"/v1/withdrawals/{state['withdrawal']}")
            if w["state"] in ("payout_failed", "rejected", "refunded"):
                raise CanaryFailed(f"withdrawal went to {w['state']}")
            return w if w["state"] in ("payout_submitted", "paid") and w["psp_reference"] else None

        w = _poll(sent, run.timeout_s, "the payout worker to submit the payout")
        state["psp_reference"] = w["psp_reference"]
        return f"payout submitted, PSP reference {w['psp_reference']}"

    def paid() -> str:
        if run.provider == "chain":

            def confirmed() -> Any:
                w = player.get(f"/v1/withdrawals/{state['withdrawal']}")
                if w["state"] == "payout_failed":
                    raise CanaryFailed(f"the on-chain transfer {w['tx_hash']} failed: withdrawal in manual review")
                return w if w["state"] == "paid" else None

            w = _poll(confirmed, run.timeout_s, "the on-chain transfer to be confirmed")
            return f"confirmed on chain, tx {w['tx_hash']}, paid at {_now()}"
        if run.simulate:
            if run.provider != "adyen":
                raise CanaryFailed("simulated payout confirmation is implemented for adyen")
            transfer = {
                "id": state["psp_reference"],
                "reference": f"wd-{state['withdrawal']}",
                "amount": {"value": run.amount_u, "currency": run.currency},
            }
            response = _send_adyen_transfer_booked(f"{player.base}/webhooks/payouts/adyen", transfer)
            if response.status_code >= 300:
                raise CanaryFailed(f"payout webhook answered {response.status_code}: {response.text[:200]}")
        _poll(
            lambda: player.get(f"/v1/withdrawals/{state['withdrawal']}")["state"] == "paid",
            run.timeout_s,
            "the PSP's paid webhook",
        )
        return f"paid at {_now()}"

    def ledger() -> str:
        start_available, start_held = state["start"]
        available, held = _wallet(player, run.currency)
        expected = start_available + state["deposited"] - run.amount_u
        run.ledger_note = (
            f"held {start_held} -> {held} (expected {start_held}); available {start_available} -> "
            f"{available} (expected {expected})"
        )
        if held != start_held or available != expected:
            raise CanaryFailed(run.ledger_note)
        breaches = ledger_breaches()
        if breaches:
            raise CanaryFailed(f"ledger invariants: {breaches[0]} (+{len(breaches) - 1} more)")
        run.ledger_note += "; every ledger invariant holds"
        return run.ledger_note

    steps = [
        ("Login", login),
        ("Deposit", deposit),
        ("Withdraw request", withdraw),
        ("Admin approve", approve),
        ("Payout submitted", submitted),
        ("Admin mark paid (PSP webhook)", paid),
        ("Ledger settlement / invariant", ledger),
    ]
    try:
        for name, action in steps:
            record(name, action)
    except CanaryFailed:
        pass
    return run


def canary_report(run: CanaryRun, *, release: str = "") -> str:
    """Fill the report template with the run's steps."""
    currency = get_currency(run.currency)
    rows = "\n".join(
        f"| {i} | {s.name} | {s.result} | {s.at} | {s.detail.replace('|', '/')} |" for i, s in enumerate(run.steps, 1)
    )
    decision = (
        "GO: Canary PASS." if run.passed else "NO-GO: Canary FAIL. Roll back per the go-live runbook's decision matrix."
    )
    values = {
        "result": "PASS" if run.passed else "FAIL",
        "started_at": run.started_at,
        "finished_at": _now(),
        "base_url": run.base_url,
        "release": release or "-",
        "player": run.player_email,
        "operator": run.operator_email,
        "amount": currency.format(run.amount_u),
        "provider": run.provider,
        "steps": rows,
        "ledger": run.ledger_note,
        "decision": decision,
    }
    text = TEMPLATE.read_text()
    for key, value in values.items():
        text = text.replace("{{" + key + "}}", str(value))
    return text
