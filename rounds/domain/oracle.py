"""Closing-price oracle: query independent sources and require exact agreement.

Rule (``resolve_close``): every configured source is asked once; every price
that comes back must be the same Decimal (numeric equality), and at least
``min_agreeing`` (default 2) distinct sources must have returned it.  Any two
differing prices raise ``OracleDisagreement``; too few prices raise
``OracleUnavailable``.  Both carry the evidence gathered.  Callers retry until
a deadline; ``resolve_close_or_void`` turns a failure after the deadline into
an ``OracleVoid`` (reason ``ORACLE_FAILURE``).

Prices are parsed from JSON with ``parse_float=Decimal``; a float never
touches a price.  Evidence URLs are recorded verbatim, so do not put secrets
in ``url_template`` (use ``headers``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Protocol, runtime_checkable
from urllib.parse import quote

import requests

from rounds.domain.commitment import format_instant, format_price
from rounds.domain.pool import VoidReason

MIN_AGREEING_SOURCES = 2
MAX_RESPONSE_BYTES = 1_000_000
DEFAULT_TIMEOUT_S = 5.0
DEFAULT_ORACLE_GRACE = timedelta(hours=2)
_PLAIN_NUMBER = re.compile(r"[0-9]+(\.[0-9]+)?")

__all__ = [
    "DEFAULT_ORACLE_GRACE",
    "DEFAULT_TIMEOUT_S",
    "MAX_RESPONSE_BYTES",
    "MIN_AGREEING_SOURCES",
    "HttpJsonPriceSource",
    "OracleAnswer",
    "OracleConfigError",
    "OracleDisagreement",
    "OracleError",
    "OracleUnavailable",
    "OracleVoid",
    "PriceEvidence",
    "PriceSource",
    "PriceUnavailable",
    "StaticPriceSource",
    "oracle_deadline",
    "resolve_close",
    "resolve_close_or_void",
]


class PriceUnavailable(Exception):
    """One source could not provide a usable closing price."""


class OracleConfigError(ValueError):
    """The source list cannot ever satisfy the agreement rule."""


@dataclass(frozen=True, slots=True)
class PriceEvidence:
    """What one source said (or why it said nothing) and when."""

    source: str
    price: Decimal | None
    fetched_at: datetime
    url: str
    error: str | None = None

    def as_dict(self) -> dict[str, str | None]:
        """Return the JSON-ready form: {source, price, fetched_at, url, error}."""
        return {
            "source": self.source,
            "price": None if self.price is None else format_price(price=self.price),
            "fetched_at": format_instant(at=self.fetched_at),
            "url": self.url,
            "error": self.error,
        }


class OracleError(Exception):
    """The oracle could not settle on a price; ``evidence`` says why."""

    def __init__(self, message: str, *, evidence: Sequence[PriceEvidence]) -> None:
        """Store the message and the evidence gathered."""
        super().__init__(message)
        self.evidence: tuple[PriceEvidence, ...] = tuple(evidence)


class OracleUnavailable(OracleError):
    """Fewer than the required number of sources returned a price."""


class OracleDisagreement(OracleError):
    """Sources returned different prices."""


@dataclass(frozen=True, slots=True)
class OracleAnswer:
    """The agreed closing price and the evidence behind it."""

    instrument: str
    day: date
    price: Decimal
    evidence: tuple[PriceEvidence, ...]


@dataclass(frozen=True, slots=True)
class OracleVoid:
    """The deadline passed without agreement: void the round."""

    reason: VoidReason
    detail: str
    evidence: tuple[PriceEvidence, ...]


@runtime_checkable
class PriceSource(Protocol):
    """A named source of official closing prices."""

    @property
    def name(self) -> str:
        """Stable, unique source name recorded in evidence."""
        ...

    def fetch_close(self, *, instrument: str, day: date) -> Decimal:
        """Return the close of ``instrument`` on ``day`` or raise PriceUnavailable."""
        ...


def _utc_now() -> datetime:
    """Return the current time as an aware UTC datetime."""
    return datetime.now(UTC)


def _checked_price(value: object, *, where: str) -> Decimal:
    """Return ``value`` as a finite positive Decimal or raise PriceUnavailable."""
    if isinstance(value, str) and not _PLAIN_NUMBER.fullmatch(value):
        raise PriceUnavailable(f"{where}: price string is not a plain number: {value!r}")
    if isinstance(value, bool) or not isinstance(value, (Decimal, int, str)):
        raise PriceUnavailable(f"{where}: price is not a number: {value!r}")
    try:
        price = Decimal(value)
    except InvalidOperation as exc:
        raise PriceUnavailable(f"{where}: price is not a number: {value!r}") from exc
    if not price.is_finite() or price <= 0:
        raise PriceUnavailable(f"{where}: price must be finite and positive: {value!r}")
    return price


def _reject_constant(token: str) -> object:
    """Refuse the non-standard JSON constants NaN and Infinity."""
    raise ValueError(f"non-finite JSON constant {token}")


def _parse_json(body: bytes, *, where: str) -> object:
    """Parse JSON with Decimal floats; raise PriceUnavailable if malformed."""
    try:
        return json.loads(body, parse_float=Decimal, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        raise PriceUnavailable(f"{where}: malformed JSON: {exc}") from exc


def _step(node: object, segment: str) -> object:
    """Follow one dotted-path segment: a dict key or a list index."""
    if isinstance(node, dict):
        return node[segment]
    if isinstance(node, list) and segment.isdecimal() and segment.isascii():
        return node[int(segment)]
    raise KeyError(segment)


def _extract(doc: object, *, field_path: str, where: str) -> Decimal:
    """Return the price at dotted ``field_path`` (e.g. ``results.0.c``) in ``doc``."""
    node = doc
    for segment in field_path.split("."):
        try:
            node = _step(node, segment)
        except (KeyError, IndexError) as exc:
            raise PriceUnavailable(f"{where}: no value at {field_path!r}") from exc
    return _checked_price(node, where=where)


def _read_capped(response: requests.Response, *, where: str) -> bytes:
    """Read at most MAX_RESPONSE_BYTES of the body or raise PriceUnavailable."""
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_content(chunk_size=65_536):
        size += len(chunk)
        if size > MAX_RESPONSE_BYTES:
            raise PriceUnavailable(f"{where}: response larger than {MAX_RESPONSE_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


@dataclass(frozen=True, slots=True)
class HttpJsonPriceSource:
    """Fetch a close over HTTP(S) from a JSON document at a dotted field path."""

    name: str
    url_template: str
    field_path: str
    timeout: float = DEFAULT_TIMEOUT_S
    headers: tuple[tuple[str, str], ...] = field(default=())

    def url_for(self, *, instrument: str, day: date) -> str:
        """Return the URL with ``{instrument}`` (quoted) and ``{date}`` filled in."""
        return self.url_template.replace("{instrument}", quote(instrument, safe="")).replace("{date}", day.isoformat())

    def fetch_close(self, *, instrument: str, day: date) -> Decimal:
        """GET the URL and return the Decimal at ``field_path`` or PriceUnavailable."""
        where = self.name
        try:
            with requests.get(
                self.url_for(instrument=instrument, day=day),
                timeout=self.timeout,
                headers=dict(self.headers),
                stream=True,
            ) as response:
                if response.status_code != 200:
                    raise PriceUnavailable(f"{where}: HTTP {response.status_code}")
                body = _read_capped(response, where=where)
        except requests.RequestException as exc:
            raise PriceUnavailable(f"{where}: request failed: {type(exc).__name__}") from exc
        return _extract(_parse_json(body, where=where), field_path=self.field_path, where=where)


@dataclass(frozen=True, slots=True)
class StaticPriceSource:
    """Prices fixed in memory, keyed by (instrument, day): tests and manual entry."""

    name: str
    prices: Mapping[tuple[str, date], Decimal]

    def __post_init__(self) -> None:
        """Refuse non-Decimal prices up front (floats in particular)."""
        if not all(isinstance(price, Decimal) for price in self.prices.values()):
            raise TypeError("StaticPriceSource prices must be Decimal")

    def url_for(self, *, instrument: str, day: date) -> str:
        """Return a pseudo-URL naming this static source."""
        return f"static:{self.name}"

    def fetch_close(self, *, instrument: str, day: date) -> Decimal:
        """Return the stored price or raise PriceUnavailable."""
        try:
            value = self.prices[(instrument, day)]
        except KeyError as exc:
            raise PriceUnavailable(f"{self.name}: no price for {instrument} {day}") from exc
        return _checked_price(value, where=self.name)


def _url_of(source: PriceSource, *, instrument: str, day: date) -> str:
    """Return the source's URL for evidence, or '' if it does not expose one."""
    url_for: Callable[..., str] | None = getattr(source, "url_for", None)
    return url_for(instrument=instrument, day=day) if callable(url_for) else ""


def _ask(source: PriceSource, *, instrument: str, day: date, clock: Callable[[], datetime]) -> PriceEvidence:
    """Query one source and record its answer or its failure as evidence."""
    url = _url_of(source, instrument=instrument, day=day)
    try:
        price = _checked_price(source.fetch_close(instrument=instrument, day=day), where=source.name)
    except PriceUnavailable as exc:
        return PriceEvidence(source=source.name, price=None, fetched_at=clock(), url=url, error=str(exc))
    return PriceEvidence(source=source.name, price=price, fetched_at=clock(), url=url)


def _check_sources(sources: Sequence[PriceSource], min_agreeing: int) -> None:
    """Raise OracleConfigError if the sources can never reach agreement."""
    if type(min_agreeing) is not int or min_agreeing < 2:
        raise OracleConfigError("min_agreeing must be an int >= 2")
    names = [source.name for source in sources]
    if len(set(names)) != len(names):
        raise OracleConfigError(f"source names must be unique: {names}")
    if len(names) < min_agreeing:
        raise OracleConfigError(f"need at least {min_agreeing} sources, got {len(names)}")


def resolve_close(
    *,
    sources: Sequence[PriceSource],
    instrument: str,
    day: date,
    min_agreeing: int = MIN_AGREEING_SOURCES,
    clock: Callable[[], datetime] = _utc_now,
) -> OracleAnswer:
    """Return the close agreed by all responding sources (at least ``min_agreeing``)."""
    _check_sources(sources, min_agreeing)
    evidence = tuple(_ask(s, instrument=instrument, day=day, clock=clock) for s in sources)
    prices = [item.price for item in evidence if item.price is not None]
    if len(set(prices)) > 1:
        quoted = ", ".join(f"{e.source}={e.price}" for e in evidence if e.price is not None)
        raise OracleDisagreement(f"sources disagree: {quoted}", evidence=evidence)
    if len(prices) < min_agreeing:
        raise OracleUnavailable(
            f"{len(prices)} of {len(sources)} sources priced; need {min_agreeing}",
            evidence=evidence,
        )
    return OracleAnswer(instrument=instrument, day=day, price=prices[0], evidence=evidence)


def resolve_close_or_void(
    *,
    sources: Sequence[PriceSource],
    instrument: str,
    day: date,
    deadline: datetime,
    min_agreeing: int = MIN_AGREEING_SOURCES,
    clock: Callable[[], datetime] = _utc_now,
) -> OracleAnswer | OracleVoid:
    """Like resolve_close, but after ``deadline`` a failure returns an OracleVoid."""
    try:
        return resolve_close(
            sources=sources,
            instrument=instrument,
            day=day,
            min_agreeing=min_agreeing,
            clock=clock,
        )
    except OracleError as exc:
        if clock() < deadline:
            raise
        return OracleVoid(reason=VoidReason.ORACLE_FAILURE, detail=str(exc), evidence=exc.evidence)


def oracle_deadline(*, close_utc: datetime, grace: timedelta = DEFAULT_ORACLE_GRACE) -> datetime:
    """Return the instant after which a still-unresolved close voids the round."""
    return close_utc + grace
