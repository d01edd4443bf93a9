"""Wiring of the closing-price oracle: configured HTTP sources plus operator-entered prices.

`settings.ORACLE_SOURCES` is a JSON list of `{"name", "url", "field"}`; each becomes an
`HttpJsonPriceSource` (`{instrument}` and `{date}` are filled into the URL). An operator's price for a
round, entered with evidence, counts as one more source named `operator:<email>`. The agreement rule
(two sources, same price) is `rounds.domain.oracle.resolve_close`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from django.conf import settings

from rounds.domain.oracle import HttpJsonPriceSource, PriceSource, PriceUnavailable


@dataclass(frozen=True, slots=True)
class OperatorPriceSource:
    """A close entered by an operator for one round, with the evidence they cited."""

    name: str
    price: Decimal
    evidence: str

    def url_for(self, *, instrument: str, day: date) -> str:
        """Return the operator's evidence (recorded as the source's URL)."""
        return self.evidence

    def fetch_close(self, *, instrument: str, day: date) -> Decimal:
        """Return the entered price."""
        if not self.price.is_finite() or self.price <= 0:
            raise PriceUnavailable(f"{self.name}: invalid price")
        return self.price


def configured_sources() -> list[PriceSource]:
    """Return the HTTP JSON sources from settings.ORACLE_SOURCES."""
    sources: list[PriceSource] = []
    for item in settings.ORACLE_SOURCES or []:
        sources.append(
            HttpJsonPriceSource(name=str(item["name"]), url_template=str(item["url"]), field_path=str(item["field"]))
        )
    return sources


def operator_sources(*, round_obj: Any) -> list[PriceSource]:
    """Return the operator-entered prices for a round as sources."""
    from .models import OracleObservation

    observations = OracleObservation.objects.filter(round=round_obj, kind=OracleObservation.Kind.OPERATOR)
    return [OperatorPriceSource(name=o.source, price=Decimal(o.price), evidence=o.evidence) for o in observations]
