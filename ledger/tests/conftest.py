"""Run every ledger test through both writers: the PostgreSQL single-statement one and the portable one."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ledger import services


@pytest.fixture(autouse=True, params=["fast-write", "portable-write"])
def ledger_writer(request: pytest.FixtureRequest) -> Iterator[str]:
    previous = services.FAST_WRITE
    services.FAST_WRITE = request.param == "fast-write"
    yield request.param
    services.FAST_WRITE = previous
