"""Run every ledger test through both writers: the PostgreSQL single-statement one and the portable one."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ledger import services


# The portable writer writes the ledger's tables from Python, which the application role the suite runs
# as may not do (only the posting functions may): the function path alone (h19-pg removes the other).
@pytest.fixture(autouse=True, params=["fast-write"])
def ledger_writer(request: pytest.FixtureRequest) -> Iterator[str]:
    previous = services.FAST_WRITE
    services.FAST_WRITE = request.param == "fast-write"
    yield request.param
    services.FAST_WRITE = previous
