"""Stuck work: finance jobs waiting past their age limit, gathered from every app that has some.

Each product registers its own finder from its `AppConfig.ready` (withdrawals and payout events in
`payouts.selectors`, webhook events in `webhooks.selectors`, rounds in `rounds.selectors`, on-chain
transfers in `payouts.chain.selectors`), as `ledger.reconciliation.register_invariant` does for
invariants; `stuck_jobs(now=)` runs them all. The kernel knows no product's tables.

The detector command (`detect_stuck_finance_jobs`), its beat task, the console's dashboard and the daily
report all read `stuck_jobs`, so they list the same findings in the same order: by each source's
`order`, then by registration.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.utils import timezone

__all__ = ["StuckFinding", "age_limit_s", "register_stuck_source", "stuck_jobs", "stuck_source_names"]


@dataclass(frozen=True)
class StuckFinding:
    """One piece of finance work that has waited too long."""

    kind: str
    id: str
    state: str
    age_s: int
    limit_s: int
    detail: str

    def line(self) -> str:
        return (
            f"{self.kind} {self.id} state={self.state} age={_age(self.age_s)} "
            f"(limit {_age(self.limit_s)}) {self.detail}".rstrip()
        )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _age(seconds: int) -> str:
    hours, rest = divmod(max(seconds, 0), 3600)
    return f"{hours}h{rest // 60:02d}m"


def age_limit_s(setting: str) -> int:
    """Return an age limit in seconds from a setting given in minutes (e.g. STUCK_WEBHOOK_AFTER_MINUTES)."""
    return int(float(getattr(settings, setting)) * 60)


StuckSource = Callable[..., list[StuckFinding]]


@dataclass(frozen=True)
class _Source:
    name: str
    order: int
    find: StuckSource


_sources: dict[str, _Source] = {}


def register_stuck_source(name: str, *, order: int = 100) -> Callable[[StuckSource], StuckSource]:
    """Register `finder(*, now)` under `name` (registering a name again replaces it); lower `order` lists first."""

    def register(finder: StuckSource) -> StuckSource:
        _sources[name] = _Source(name=name, order=order, find=finder)
        return finder

    return register


def stuck_source_names() -> list[str]:
    """Return the registered sources' names in the order their findings are listed."""
    return [source.name for source in sorted(_sources.values(), key=lambda s: s.order)]


def stuck_jobs(*, now: datetime | None = None) -> list[StuckFinding]:
    """Return every stuck piece of work, from every registered source, all aged at one `now`."""
    now = now or timezone.now()
    findings: list[StuckFinding] = []
    for source in sorted(_sources.values(), key=lambda s: s.order):
        findings += source.find(now=now)
    return findings
