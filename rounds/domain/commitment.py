"""The round's commitment: canonical values, the committed parameters and their hash, published at open.

``round_commit(params=...)`` is the SHA-256 hex of the RFC 8785 canonical JSON (``ops.canonical``, floats
refused) of exactly the fields in ``COMMIT_FIELDS`` (see ``commit_params``): ``code``, ``instrument``,
``reference_close`` (canonical decimal string), ``open_utc``/``lock_utc``/``close_utc``/``settle_after_utc``
(ISO 8601 UTC, ``...Z``), ``fee_bps``, ``min_stake_u``, ``rules_version``, ``previous_commit`` (hex or null)
and ``salt`` (64 hex chars, revealed at settlement).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import TypeGuard

from ops.canonical import CanonicalJsonError, canonical_json
from rounds.domain.calendar import InvalidRoundCode, parse_code
from rounds.domain.errors import InvalidCommitParams, NotCanonical
from rounds.domain.pool import BPS_DENOMINATOR

RULES_VERSION = "updown-parimutuel/1"
SALT_BYTES = 32
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
_HEX64 = re.compile(r"[0-9a-f]{64}")

__all__ = [
    "COMMIT_FIELDS",
    "RULES_VERSION",
    "SALT_BYTES",
    "check_commit_params",
    "commit_params",
    "format_instant",
    "format_price",
    "is_canonical_price",
    "is_exact_int",
    "new_salt",
    "parse_instant",
    "protocol_json",
    "round_commit",
    "text_of",
]


def is_exact_int(value: object) -> TypeGuard[int]:
    """Return True for a real ``int`` (bools excluded)."""
    return type(value) is int


def text_of(value: object, *, name: str) -> str:
    """Return ``value`` as a str or raise TypeError."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a string")
    return value


def protocol_json(obj: object) -> bytes:
    """Return the canonical JSON bytes the protocol hashes (RFC 8785, no floats); NotCanonical if none."""
    try:
        return canonical_json(obj)
    except CanonicalJsonError as exc:
        raise NotCanonical(str(exc)) from exc


# ---------------------------------------------------------------- canonical values


def format_price(*, price: Decimal) -> str:
    """Return a finite Decimal as plain digits without trailing zeros (canonical)."""
    if not isinstance(price, Decimal) or not price.is_finite():
        raise NotCanonical(f"price must be a finite Decimal, got {price!r}")
    text = format(price, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def format_instant(*, at: datetime) -> str:
    """Return ``at`` as ISO 8601 UTC ``YYYY-MM-DDTHH:MM:SS[.ffffff]Z``."""
    if not isinstance(at, datetime) or at.utcoffset() is None:
        raise NotCanonical(f"instant must be a timezone-aware datetime, got {at!r}")
    utc = at.astimezone(UTC)
    spec = "microseconds" if utc.microsecond else "seconds"
    return utc.replace(tzinfo=None).isoformat(timespec=spec) + "Z"


def parse_instant(text: object, *, name: str) -> datetime:
    """Parse a canonical ISO 8601 UTC string or raise InvalidCommitParams."""
    try:
        value = datetime.fromisoformat(text_of(text, name=name))
        if format_instant(at=value) != text:
            raise ValueError("not canonical")
    except (TypeError, ValueError) as exc:
        raise InvalidCommitParams(f"{name} must be canonical ISO 8601 UTC, got {text!r}") from exc
    return value


def is_canonical_price(value: object) -> bool:
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
    check_commit_params(params)
    return params


def _require(condition: bool, message: str) -> None:
    """Raise InvalidCommitParams with ``message`` unless ``condition``."""
    if not condition:
        raise InvalidCommitParams(message)


def check_commit_params(params: Mapping[str, object]) -> None:
    """Check the exact key set and canonical form of every commit parameter (InvalidCommitParams)."""
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
    _require(is_exact_int(fee) and 0 <= fee <= BPS_DENOMINATOR, "fee_bps must be int 0..10000")
    _require(is_exact_int(min_stake) and min_stake > 0, "min_stake_u must be a positive int")
    _require(prev is None or _is_hex64(prev), "previous_commit must be null or 64 hex")
    _require(_is_hex64(params["salt"]), "salt must be 64 lowercase hex chars")
    _require(is_canonical_price(params["reference_close"]), "reference_close not canonical")


def _validate_times(params: Mapping[str, object]) -> None:
    """Validate the four instants and their order open < lock < close <= settle."""
    names = ("open_utc", "lock_utc", "close_utc", "settle_after_utc")
    opened, lock, close, settle = (parse_instant(params[n], name=n) for n in names)
    _require(opened < lock < close <= settle, "need open < lock < close <= settle_after")


def round_commit(*, params: Mapping[str, object]) -> str:
    """Return the commit hash (SHA-256 hex of canonical JSON) of validated params."""
    check_commit_params(params)
    return hashlib.sha256(protocol_json(params)).hexdigest()


def new_salt() -> str:
    """Return a fresh secret salt: 32 random bytes as lowercase hex."""
    return secrets.token_hex(SALT_BYTES)
