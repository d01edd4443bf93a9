"""Provable fairness: commit at open, Merkle root at lock, reveal at settlement.

Commit (at open)
    ``round_commit(params=...)`` = SHA-256 hex of the RFC 8785 canonical JSON
    of exactly the fields in ``COMMIT_FIELDS`` (see ``commit_params``):
    ``code``, ``instrument``, ``reference_close`` (canonical decimal string),
    ``open_utc``/``lock_utc``/``close_utc``/``settle_after_utc`` (ISO 8601 UTC,
    ``...Z``), ``fee_bps``, ``min_stake_u``, ``rules_version``,
    ``previous_commit`` (hex or null) and ``salt`` (64 hex chars).

Merkle root (at lock), as RFC 6962 (Certificate Transparency):
    leaf hash  = SHA-256(0x00 || canonical_json({bet_id, player_id, side,
                 stake_u, placed_at}))
    node hash  = SHA-256(0x01 || left || right), splitting n leaves at the
                 largest power of two < n;
    empty root = SHA-256(b"") (``EMPTY_ROOT``).
    Leaves are ordered by ``bet_id`` ascending in Unicode code-point order
    (== UTF-8 byte order; NOT a database collation -- sort in Python or use
    ``COLLATE "C"``); bet ids must be unique.

Reveal (at settlement), built by ``build_reveal`` and checked by
``verify_reveal``: committed params without salt, the salt, the official close
(or null), price evidence, effective result, void reason, fee, breakage and
payouts keyed by bet_id.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import TypeGuard

import rfc8785

from rounds.domain.calendar import InvalidRoundCode, parse_code
from rounds.domain.pool import (
    BPS_DENOMINATOR,
    Result,
    Settlement,
    Side,
    VoidReason,
    outcome,
    settle_pool,
)

RULES_VERSION = "updown-parimutuel/1"
SALT_BYTES = 32
LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"
EMPTY_ROOT = hashlib.sha256(b"").hexdigest()
COMMIT_FIELDS = (
    "close_utc",
    "code",
    "fee_bps",
    "instrument",
    "lock_utc",
    "min_stake_u",
    "open_utc",
    "previous_commit",
    "reference_close",
    "rules_version",
    "salt",
    "settle_after_utc",
)
BET_FIELDS = ("bet_id", "placed_at", "player_id", "side", "stake_u")
VOID_WITHOUT_CLOSE = (VoidReason.ORACLE_FAILURE, VoidReason.CANCELLED)
# Known at lock from the bets alone, so settled without a price; the bets are rechecked.
VOID_BY_POOL = (VoidReason.EMPTY, VoidReason.ONE_SIDED)
_HEX64 = re.compile(r"[0-9a-f]{64}")

__all__ = [
    "BET_FIELDS",
    "COMMIT_FIELDS",
    "EMPTY_ROOT",
    "LEAF_PREFIX",
    "NODE_PREFIX",
    "RULES_VERSION",
    "SALT_BYTES",
    "VOID_BY_POOL",
    "VOID_WITHOUT_CLOSE",
    "CanonicalJsonError",
    "Check",
    "IntegrityError",
    "InvalidBet",
    "InvalidCommitParams",
    "InvalidMerkleInput",
    "VerifyReport",
    "bet_leaf",
    "bet_leaves",
    "build_reveal",
    "canonical_json",
    "commit_params",
    "format_instant",
    "format_price",
    "merkle_proof",
    "merkle_root",
    "new_salt",
    "proof_for_bet",
    "round_commit",
    "sort_bets",
    "verify_proof",
    "verify_reveal",
]


class IntegrityError(ValueError):
    """Base class for integrity input errors."""


class CanonicalJsonError(IntegrityError):
    """The value cannot be serialised as RFC 8785 JSON (floats are refused)."""


class InvalidCommitParams(IntegrityError):
    """Commit parameters are missing, extra or not in canonical form."""


class InvalidBet(IntegrityError):
    """A bet record is malformed or its bet_id is duplicated."""


class InvalidMerkleInput(IntegrityError):
    """A leaf is not a 32-byte hash or a proof index is out of range."""


# ---------------------------------------------------------------- typed access

Json = None | bool | int | str | list["Json"] | dict[str, "Json"]


def _is_int(value: object) -> TypeGuard[int]:
    """Return True for a real ``int`` (bools excluded)."""
    return type(value) is int


def _mapping(value: object, *, name: str) -> Mapping[str, object]:
    """Return ``value`` as a mapping or raise TypeError."""
    if not isinstance(value, Mapping):
        raise TypeError(f"{name} must be an object")
    return value


def _text(value: object, *, name: str) -> str:
    """Return ``value`` as a str or raise TypeError."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a string")
    return value


def _integer(value: object, *, name: str) -> int:
    """Return ``value`` as an exact int or raise TypeError."""
    if not _is_int(value):
        raise TypeError(f"{name} must be an integer")
    return value


def _items(value: object, *, name: str) -> list[object]:
    """Return ``value`` as a list of items (list or tuple) or raise TypeError."""
    if not isinstance(value, (list, tuple)):
        raise TypeError(f"{name} must be an array")
    return list(value)


# ---------------------------------------------------------------- canonical JSON


def _plain(obj: object) -> Json:
    """Convert ``obj`` to plain JSON types, refusing floats, Decimals and odd keys."""
    if obj is None or isinstance(obj, bool):
        return obj
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, str):
        return str.__str__(obj)
    if isinstance(obj, Mapping):
        if not all(isinstance(key, str) for key in obj):
            raise CanonicalJsonError("object keys must be strings")
        return {str.__str__(key): _plain(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(item) for item in obj]
    raise CanonicalJsonError(f"unsupported JSON value of type {type(obj).__name__}")


def canonical_json(obj: object) -> bytes:
    """Return the RFC 8785 canonical JSON bytes of ``obj`` (no floats allowed)."""
    try:
        return rfc8785.dumps(_plain(obj))
    except (rfc8785.CanonicalizationError, UnicodeEncodeError) as exc:
        raise CanonicalJsonError(str(exc)) from exc


def _sha256_hex(data: bytes) -> str:
    """Return the SHA-256 hex digest of ``data``."""
    return hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------- canonical values


def format_price(*, price: Decimal) -> str:
    """Return a finite Decimal as plain digits without trailing zeros (canonical)."""
    if not isinstance(price, Decimal) or not price.is_finite():
        raise IntegrityError(f"price must be a finite Decimal, got {price!r}")
    text = format(price, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def format_instant(*, at: datetime) -> str:
    """Return ``at`` as ISO 8601 UTC ``YYYY-MM-DDTHH:MM:SS[.ffffff]Z``."""
    if not isinstance(at, datetime) or at.utcoffset() is None:
        raise IntegrityError(f"instant must be a timezone-aware datetime, got {at!r}")
    utc = at.astimezone(UTC)
    spec = "microseconds" if utc.microsecond else "seconds"
    return utc.replace(tzinfo=None).isoformat(timespec=spec) + "Z"


def _parse_instant(text: object, *, name: str) -> datetime:
    """Parse a canonical ISO 8601 UTC string or raise InvalidCommitParams."""
    try:
        value = datetime.fromisoformat(_text(text, name=name))
        if format_instant(at=value) != text:
            raise ValueError("not canonical")
    except (TypeError, ValueError) as exc:
        raise InvalidCommitParams(f"{name} must be canonical ISO 8601 UTC, got {text!r}") from exc
    return value


def _is_canonical_price(value: object) -> bool:
    """Return True for a canonical positive price string (see ``format_price``)."""
    if not isinstance(value, str):
        return False
    try:
        price = Decimal(value)
    except InvalidOperation:
        return False
    return price.is_finite() and price > 0 and format_price(price=price) == value


def _is_hex64(value: object) -> bool:
    """Return True for a 64-char lowercase hex string."""
    return isinstance(value, str) and _HEX64.fullmatch(value) is not None


# ---------------------------------------------------------------- commit


def commit_params(
    *,
    code: str,
    instrument: str,
    reference_close: Decimal,
    open_utc: datetime,
    lock_utc: datetime,
    close_utc: datetime,
    settle_after_utc: datetime,
    fee_bps: int,
    min_stake_u: int,
    previous_commit: str | None,
    salt: str,
    rules_version: str = RULES_VERSION,
) -> dict[str, object]:
    """Return the canonical commit parameter dict (validated) for one round."""
    params: dict[str, object] = {
        "code": code,
        "instrument": instrument,
        "reference_close": format_price(price=reference_close),
        "open_utc": format_instant(at=open_utc),
        "lock_utc": format_instant(at=lock_utc),
        "close_utc": format_instant(at=close_utc),
        "settle_after_utc": format_instant(at=settle_after_utc),
        "fee_bps": fee_bps,
        "min_stake_u": min_stake_u,
        "rules_version": rules_version,
        "previous_commit": previous_commit,
        "salt": salt,
    }
    _validate_params(params)
    return params


def _require(condition: bool, message: str) -> None:
    """Raise InvalidCommitParams with ``message`` unless ``condition``."""
    if not condition:
        raise InvalidCommitParams(message)


def _validate_params(params: Mapping[str, object]) -> None:
    """Check the exact key set and canonical form of every commit parameter."""
    _require(isinstance(params, Mapping), "params must be a mapping")
    _require(sorted(params) == list(COMMIT_FIELDS), f"params keys must be {COMMIT_FIELDS}")
    code = params["code"]
    _require(isinstance(code, str) and _is_round_code(code), f"bad round code {code!r}")
    _validate_scalars(params)
    _validate_times(params)


def _is_round_code(code: str) -> bool:
    """Return True if ``code`` parses as a YYYYMMDD round code."""
    try:
        parse_code(code)
    except InvalidRoundCode:
        return False
    return True


def _validate_scalars(params: Mapping[str, object]) -> None:
    """Validate the non-time commit parameters."""
    fee, min_stake, prev = (
        params["fee_bps"],
        params["min_stake_u"],
        params["previous_commit"],
    )
    for name in ("instrument", "rules_version"):
        _require(isinstance(params[name], str) and params[name] != "", f"{name} empty")
    _require(_is_int(fee) and 0 <= fee <= BPS_DENOMINATOR, "fee_bps must be int 0..10000")
    _require(_is_int(min_stake) and min_stake > 0, "min_stake_u must be a positive int")
    _require(prev is None or _is_hex64(prev), "previous_commit must be null or 64 hex")
    _require(_is_hex64(params["salt"]), "salt must be 64 lowercase hex chars")
    _require(_is_canonical_price(params["reference_close"]), "reference_close not canonical")


def _validate_times(params: Mapping[str, object]) -> None:
    """Validate the four instants and their order open < lock < close <= settle."""
    names = ("open_utc", "lock_utc", "close_utc", "settle_after_utc")
    opened, lock, close, settle = (_parse_instant(params[n], name=n) for n in names)
    _require(opened < lock < close <= settle, "need open < lock < close <= settle_after")


def round_commit(*, params: Mapping[str, object]) -> str:
    """Return the commit hash (SHA-256 hex of canonical JSON) of validated params."""
    _validate_params(params)
    return _sha256_hex(canonical_json(params))


def new_salt() -> str:
    """Return a fresh secret salt: 32 random bytes as lowercase hex."""
    return secrets.token_hex(SALT_BYTES)


# ---------------------------------------------------------------- Merkle tree


def bet_leaf(*, bet_id: str, player_id: str, side: str, stake_u: int, placed_at: str) -> bytes:
    """Return the 32-byte leaf hash SHA-256(0x00 || canonical JSON of the bet)."""
    record: dict[str, object] = {
        "bet_id": bet_id,
        "player_id": player_id,
        "side": side,
        "stake_u": stake_u,
        "placed_at": placed_at,
    }
    return _record_leaf(record)


def _record_leaf(bet: Mapping[str, object]) -> bytes:
    """Validate one bet record and return its leaf hash."""
    _validate_bet(bet)
    return hashlib.sha256(LEAF_PREFIX + canonical_json(bet)).digest()


def _validate_bet(bet: Mapping[str, object]) -> None:
    """Raise InvalidBet unless ``bet`` has exactly BET_FIELDS with valid types."""
    if not isinstance(bet, Mapping) or sorted(bet) != list(BET_FIELDS):
        raise InvalidBet(f"bet must have exactly the fields {BET_FIELDS}")
    texts = (bet["bet_id"], bet["player_id"], bet["placed_at"])
    if not all(isinstance(text, str) and text for text in texts):
        raise InvalidBet("bet_id, player_id and placed_at must be non-empty strings")
    if not isinstance(bet["side"], str) or bet["side"] not in (
        Side.UP.value,
        Side.DOWN.value,
    ):
        raise InvalidBet(f"side must be 'UP' or 'DOWN', got {bet['side']!r}")
    stake = bet["stake_u"]
    if not _is_int(stake) or stake <= 0:
        raise InvalidBet(f"stake_u must be a positive int, got {stake!r}")


def sort_bets(*, bets: Sequence[Mapping[str, object]]) -> list[Mapping[str, object]]:
    """Return bets in leaf order (bet_id ascending by code point); reject duplicates."""
    for bet in bets:
        _validate_bet(bet)
    ordered = sorted(bets, key=lambda bet: _text(bet["bet_id"], name="bet_id"))
    ids = [bet["bet_id"] for bet in ordered]
    if len(set(ids)) != len(ids):
        raise InvalidBet("duplicate bet_id")
    return ordered


def bet_leaves(*, bets: Sequence[Mapping[str, object]]) -> list[bytes]:
    """Return the leaf hashes of ``bets`` in canonical leaf order."""
    return [_record_leaf(bet) for bet in sort_bets(bets=bets)]


def _node(left: bytes, right: bytes) -> bytes:
    """Return the internal node hash SHA-256(0x01 || left || right)."""
    return hashlib.sha256(NODE_PREFIX + left + right).digest()


def _split(size: int) -> int:
    """Return the largest power of two strictly less than ``size`` (size >= 2)."""
    return 1 << ((size - 1).bit_length() - 1)


def _check_leaves(leaves: Sequence[bytes]) -> None:
    """Raise InvalidMerkleInput unless every leaf is a 32-byte ``bytes``."""
    if not all(isinstance(leaf, bytes) and len(leaf) == 32 for leaf in leaves):
        raise InvalidMerkleInput("leaves must be 32-byte leaf hashes (see bet_leaf)")


def _subtree(leaves: Sequence[bytes], lo: int, hi: int) -> bytes:
    """Return the RFC 6962 hash of ``leaves[lo:hi]`` (non-empty)."""
    if hi - lo == 1:
        return leaves[lo]
    mid = lo + _split(hi - lo)
    return _node(_subtree(leaves, lo, mid), _subtree(leaves, mid, hi))


def _root_hex(leaves: Sequence[bytes]) -> str:
    """Return the hex root of ``leaves`` in the given order (EMPTY_ROOT if none)."""
    _check_leaves(leaves)
    return _subtree(leaves, 0, len(leaves)).hex() if leaves else EMPTY_ROOT


def merkle_root(leaves: Sequence[bytes]) -> str:
    """Return the RFC 6962 Merkle root (hex) of leaf hashes, in the order given."""
    return _root_hex(leaves)


def _path(leaves: Sequence[bytes], index: int, lo: int, hi: int) -> list[tuple[str, str]]:
    """Return the audit path of ``index`` in ``leaves[lo:hi]``, leaf level first."""
    if hi - lo == 1:
        return []
    mid = lo + _split(hi - lo)
    if index < mid:
        return [*_path(leaves, index, lo, mid), (_subtree(leaves, mid, hi).hex(), "R")]
    return [*_path(leaves, index, mid, hi), (_subtree(leaves, lo, mid).hex(), "L")]


def merkle_proof(leaves: Sequence[bytes], index: int) -> list[tuple[str, str]]:
    """Return ``[(sibling_hex, 'L'|'R'), ...]`` from leaf ``index`` up to the root."""
    _check_leaves(leaves)
    if not _is_int(index) or not 0 <= index < len(leaves):
        raise InvalidMerkleInput(f"index {index!r} out of range for {len(leaves)} leaves")
    return _path(leaves, index, 0, len(leaves))


def _fold(leaf: bytes, proof: Sequence[tuple[str, str]]) -> bytes:
    """Hash ``leaf`` up through ``proof`` and return the resulting root bytes."""
    digest = leaf
    for sibling_hex, position in proof:
        sibling = bytes.fromhex(sibling_hex)
        if len(sibling) != 32 or position not in ("L", "R"):
            raise ValueError("bad proof step")
        digest = _node(sibling, digest) if position == "L" else _node(digest, sibling)
    return digest


def verify_proof(*, leaf: bytes, proof: Sequence[tuple[str, str]], root: str) -> bool:
    """Return True if ``proof`` links leaf hash ``leaf`` to hex ``root``; no raise."""
    try:
        if not isinstance(leaf, bytes) or len(leaf) != 32:
            return False
        return hmac.compare_digest(_fold(leaf, proof).hex(), root.lower())
    except (TypeError, ValueError, AttributeError):
        return False


def proof_for_bet(*, bets: Sequence[Mapping[str, object]], bet_id: str) -> list[tuple[str, str]]:
    """Return the inclusion proof of ``bet_id`` in the canonical tree of ``bets``."""
    ids = [bet["bet_id"] for bet in sort_bets(bets=bets)]
    if bet_id not in ids:
        raise InvalidBet(f"bet_id {bet_id!r} not among bets")
    return merkle_proof(bet_leaves(bets=bets), ids.index(bet_id))


# ---------------------------------------------------------------- reveal


def build_reveal(
    *,
    params: Mapping[str, object],
    close: Decimal | None,
    evidence: Sequence[Mapping[str, object]],
    settlement: Settlement[str],
) -> dict[str, object]:
    """Return the public reveal document for a settled round (params include salt)."""
    _validate_params(params)
    reason = settlement.void_reason
    return {
        "params": {key: value for key, value in params.items() if key != "salt"},
        "salt": params["salt"],
        "close": None if close is None else format_price(price=close),
        "evidence": [dict(item) for item in evidence],
        "result": settlement.result.value,
        "void_reason": None if reason is None else reason.value,
        "fee_u": settlement.fee_u,
        "breakage_u": settlement.breakage_u,
        "payouts_u": dict(settlement.payouts_u),
    }


@dataclass(frozen=True, slots=True)
class Check:
    """One verification step: the part checked, whether it passed, and why."""

    part: str
    ok: bool
    detail: str


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """Result of ``verify_reveal``: PASS only if every check passed."""

    checks: tuple[Check, ...]

    @property
    def ok(self) -> bool:
        """True if every check passed."""
        return all(check.ok for check in self.checks)

    @property
    def status(self) -> str:
        """``"PASS"`` or ``"FAIL"``."""
        return "PASS" if self.ok else "FAIL"

    @property
    def failed_parts(self) -> tuple[str, ...]:
        """Names of the failed parts, in check order."""
        return tuple(check.part for check in self.checks if not check.ok)


_EXPECTED_ERRORS = (KeyError, TypeError, ValueError, ArithmeticError, AttributeError)


def _run(part: str, step: Callable[[], str]) -> Check:
    """Run one check; a raised expected error or a non-empty message means failure."""
    try:
        problem = step()
    except _EXPECTED_ERRORS as exc:
        problem = f"{type(exc).__name__}: {exc}"
    return Check(part=part, ok=not problem, detail=problem or "ok")


def _revealed_params(reveal: Mapping[str, object]) -> Mapping[str, object]:
    """Return the revealed params (without salt)."""
    return _mapping(_mapping(reveal, name="reveal")["params"], name="params")


def _full_params(reveal: Mapping[str, object]) -> dict[str, object]:
    """Return revealed params with the revealed salt merged in."""
    params = dict(_revealed_params(reveal))
    if "salt" in params:
        raise InvalidCommitParams("salt must be revealed separately, not inside params")
    params["salt"] = reveal["salt"]
    return params


def _same_hex(recomputed: str, claimed: object) -> bool:
    """Constant-time comparison of a recomputed hex digest with a claimed one."""
    return hmac.compare_digest(recomputed, _text(claimed, name="digest").lower())


def _check_commit(reveal: Mapping[str, object], commit: str) -> str:
    """Return '' if the revealed params + salt hash to ``commit``."""
    recomputed = round_commit(params=_full_params(reveal))
    return "" if _same_hex(recomputed, commit) else f"commit mismatch: recomputed {recomputed}"


def _check_merkle(bets: Sequence[Mapping[str, object]], root: str) -> str:
    """Return '' if the bets hash to the published Merkle root."""
    recomputed = _root_hex(bet_leaves(bets=bets))
    return "" if _same_hex(recomputed, root) else f"merkle mismatch: recomputed {recomputed}"


def _check_bets(reveal: Mapping[str, object], bets: Sequence[Mapping[str, object]]) -> str:
    """Return '' if every bet meets the minimum stake and was placed before lock."""
    params = _revealed_params(reveal)
    lock = _parse_instant(params["lock_utc"], name="lock_utc")
    minimum = _integer(params["min_stake_u"], name="min_stake_u")
    for bet in sort_bets(bets=bets):
        if _integer(bet["stake_u"], name="stake_u") < minimum:
            return f"bet {bet['bet_id']} stake below min_stake_u"
        if _parse_instant(bet["placed_at"], name="placed_at") >= lock:
            return f"bet {bet['bet_id']} placed at or after lock"
    return ""


def _revealed_close(reveal: Mapping[str, object]) -> Decimal | None:
    """Return the revealed close as a Decimal (None if absent)."""
    close = reveal["close"]
    if close is None:
        return None
    if not _is_canonical_price(close):
        raise ValueError(f"close {close!r} is not a canonical positive price")
    return Decimal(_text(close, name="close"))


def _quotes(reveal: Mapping[str, object]) -> list[tuple[str, Decimal]]:
    """Return (source, price) for every evidence entry that quoted a price."""
    quotes = []
    for item in _items(reveal["evidence"], name="evidence"):
        entry = _mapping(item, name="evidence entry")
        if entry["price"] is not None:
            price = Decimal(_text(entry["price"], name="evidence price"))
            quotes.append((_text(entry["source"], name="source"), price))
    return quotes


def _check_evidence(reveal: Mapping[str, object], min_agreeing: int) -> str:
    """Return '' if the evidence supports the revealed close (or its absence)."""
    close = _revealed_close(reveal)
    if close is None:
        reason = reveal["void_reason"]
        ok = reason in {r.value for r in (*VOID_WITHOUT_CLOSE, *VOID_BY_POOL)}
        return "" if ok else f"close missing but void_reason is {reason!r}"
    quotes = _quotes(reveal)
    if any(price != close for _, price in quotes):
        return "evidence contains a price different from the close"
    if len({source for source, _ in quotes}) < min_agreeing:
        return f"fewer than {min_agreeing} distinct sources quote the close"
    return ""


def _price_result(reveal: Mapping[str, object]) -> tuple[Result, VoidReason | None]:
    """Return the result implied by reference and close (or the no-close void)."""
    close = _revealed_close(reveal)
    if close is None:
        reason = VoidReason(_text(reveal["void_reason"], name="void_reason"))
        if reason in VOID_BY_POOL:
            # settle_pool derives EMPTY / ONE_SIDED from the bets; a two-sided pool yields TIE.
            return Result.VOID, None
        if reason not in VOID_WITHOUT_CLOSE:
            raise ValueError(f"no close revealed, yet void_reason is {reason}")
        return Result.VOID, reason
    reference = _text(_revealed_params(reveal)["reference_close"], name="reference_close")
    result = outcome(reference=Decimal(reference), close=close)
    return result, (VoidReason.TIE if result is Result.VOID else None)


def _expected_settlement(reveal: Mapping[str, object], bets: Sequence[Mapping[str, object]]) -> Settlement[str]:
    """Recompute the settlement from revealed prices, params and bets."""
    result, reason = _price_result(reveal)
    stakes = [
        (
            _text(b["bet_id"], name="bet_id"),
            Side(_text(b["side"], name="side")),
            _integer(b["stake_u"], name="stake_u"),
        )
        for b in sort_bets(bets=bets)
    ]
    fee_bps = _integer(_revealed_params(reveal)["fee_bps"], name="fee_bps")
    return settle_pool(stakes=stakes, result=result, fee_bps=fee_bps, void_reason=reason)


def _check_result(reveal: Mapping[str, object], bets: Sequence[Mapping[str, object]]) -> str:
    """Return '' if the revealed result and void reason match the recomputation."""
    expected = _expected_settlement(reveal, bets)
    reason = expected.void_reason
    want = (expected.result.value, None if reason is None else reason.value)
    got = (reveal["result"], reveal["void_reason"])
    return "" if got == want else f"result {got} != recomputed {want}"


def _check_payouts(reveal: Mapping[str, object], bets: Sequence[Mapping[str, object]]) -> str:
    """Return '' if revealed payouts, fee and breakage equal the recomputation."""
    expected = _expected_settlement(reveal, bets)
    payouts = _mapping(reveal["payouts_u"], name="payouts_u")
    got = {key: _integer(value, name="payout") for key, value in payouts.items()}
    if got != dict(expected.payouts_u):
        return "payouts differ from recomputation"
    fee = _integer(reveal["fee_u"], name="fee_u")
    breakage = _integer(reveal["breakage_u"], name="breakage_u")
    want = (expected.fee_u, expected.breakage_u)
    return "" if (fee, breakage) == want else f"fee/breakage {(fee, breakage)} != {want}"


def verify_reveal(
    *,
    reveal: Mapping[str, object],
    commit: str,
    bets: Sequence[Mapping[str, object]],
    merkle_root: str,
    min_agreeing_sources: int = 2,
) -> VerifyReport:
    """Independently recheck commit, Merkle root, bets, evidence, result and payouts."""
    checks = (
        _run("commit", lambda: _check_commit(reveal, commit)),
        _run("merkle", lambda: _check_merkle(bets, merkle_root)),
        _run("bets", lambda: _check_bets(reveal, bets)),
        _run("evidence", lambda: _check_evidence(reveal, min_agreeing_sources)),
        _run("result", lambda: _check_result(reveal, bets)),
        _run("payouts", lambda: _check_payouts(reveal, bets)),
    )
    return VerifyReport(checks=checks)
