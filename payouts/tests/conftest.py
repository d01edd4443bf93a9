"""Payout test fixtures: the local PSP stub wired into settings, players with money, operators, helpers."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from webhooks.stub import PSPStub


@pytest.fixture
def stub(settings: Any) -> Iterator[PSPStub]:
    """The PSP stub on 127.0.0.1, with both SDKs pointed at it and a short client timeout."""
    with PSPStub(timeout_delay=2.0) as psp:
        settings.ADYEN_API_BASE = psp.url
        settings.STRIPE_API_BASE = psp.url
        settings.PAYOUT_PROVIDER_TIMEOUT_S = 0.5
        yield psp


@pytest.fixture
def funded_player(player: Any, fund: Callable[..., Any]) -> Any:
    """A player with 100 USDC available."""
    fund(player, 100_000_000)
    return player


@pytest.fixture
def finance(make_staff: Callable[..., Any]) -> Any:
    return make_staff(role="finance")


@pytest.fixture
def finance2(make_staff: Callable[..., Any]) -> Any:
    return make_staff(role="finance")


@pytest.fixture
def support(make_staff: Callable[..., Any]) -> Any:
    return make_staff(role="support")
