"""Short-lived per-process caches of hot reads, each with an explicit staleness bound.

Some reads sit on every request yet change rarely: the caller's API token and user, the maintenance switch,
an OPEN round's public answer. A `TtlCache` keeps such an answer in this process's memory and serves it for
at most a bound named by a setting (`AUTH_TOKEN_CACHE_S`, `SWITCH_CACHE_S`, `ROUND_OPEN_CACHE_S`, 1 s by
default), measured on the monotonic clock from the moment the read that produced it *started*. So a change
in the database (a token deleted, a user deactivated, a switch turned on, a round locked) reaches every
process within that bound, without any signal between processes; a bound of 0 turns the cache off.

Only reads whose staleness is harmless within the bound may use one: a read that guards money inside the
transaction that moves it (`payout_freeze`, `betting_paused` in a bet) stays a fresh database read.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

from django.conf import settings

V = TypeVar("V")

_caches: list[TtlCache[object]] = []


class TtlCache(Generic[V]):
    """A bounded map from keys to values served for at most `settings.<ttl_setting>` seconds.

    `clock` is the monotonic clock (tests move a fake one). At most `max_entries` entries are kept: on
    overflow the expired ones go, then, if still full, everything (a cold read is only slower, never wrong).
    """

    def __init__(self, *, name: str, ttl_setting: str, max_entries: int = 10_000) -> None:
        self.name = name
        self.ttl_setting = ttl_setting
        self.max_entries = max_entries
        self.clock: Callable[[], float] = time.monotonic
        self._entries: dict[Hashable, tuple[float, V]] = {}
        self._lock = threading.Lock()
        _caches.append(self)  # type: ignore[arg-type]

    @property
    def ttl_s(self) -> float:
        """The bound, read from the settings at every use (so a deployment or a test can change it)."""
        return float(getattr(settings, self.ttl_setting))

    def get(self, key: Hashable) -> V | None:
        """The value stored under `key` if it was read less than the bound ago, else None."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        read_at, value = entry
        if self.clock() - read_at >= self.ttl_s:
            return None
        return value

    def load(self, key: Hashable, read: Callable[[], V | None]) -> V | None:
        """The cached value of `key`, or `read()`'s (stored unless None, aged from before the read)."""
        value = self.get(key)
        if value is not None:
            return value
        started = self.clock()
        value = read()
        if value is not None:
            self.store(key, started, value)
        return value

    def store(self, key: Hashable, read_at: float, value: V) -> None:
        """Remember `value` as read at `read_at` (this cache's clock, taken before the read began)."""
        if self.ttl_s <= 0:
            return
        with self._lock:
            if len(self._entries) >= self.max_entries and key not in self._entries:
                now, ttl = self.clock(), self.ttl_s
                self._entries = {k: e for k, e in self._entries.items() if now - e[0] < ttl}
                if len(self._entries) >= self.max_entries:
                    self._entries = {}
            self._entries[key] = (read_at, value)

    def discard(self, predicate: Callable[[Hashable, V], bool]) -> None:
        """Forget the entries for which `predicate(key, value)` holds (this process only)."""
        with self._lock:
            self._entries = {k: e for k, e in self._entries.items() if not predicate(k, e[1])}

    def clear(self) -> None:
        """Forget every entry (tests; nothing in production needs it)."""
        with self._lock:
            self._entries = {}


def ttl_caches_clear() -> None:
    """Empty every `TtlCache` of this process (each test starts cold)."""
    for cache in _caches:
        cache.clear()
