"""Chain test fixtures: a real EVM (eth-tester + py-evm) behind a local JSON-RPC bridge, and the test token."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from payouts.chain.testing.fixtures import CONFIRMATIONS, ChainEnv, chain_env_vars, start_chain


def _wire(env: ChainEnv, settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    variables = chain_env_vars(env)
    settings.CHAIN_RPC_URL = variables["CHAIN_RPC_URL"]
    settings.CHAIN_ID = int(variables["CHAIN_ID"])
    settings.CHAIN_USDC_ADDRESS = variables["CHAIN_USDC_ADDRESS"]
    settings.CHAIN_CONFIRMATIONS = CONFIRMATIONS
    settings.CHAIN_MAX_FEE_PER_GAS_WEI = int(variables["CHAIN_MAX_FEE_PER_GAS_WEI"])
    settings.CHAIN_PRIORITY_FEE_WEI = int(variables["CHAIN_PRIORITY_FEE_WEI"])
    settings.CHAIN_DEPOSIT_XPUB = variables["CHAIN_DEPOSIT_XPUB"]
    settings.CHAIN_DEPOSIT_START_BLOCK = 0
    settings.CHAIN_RPC_TIMEOUT_S = 5.0
    monkeypatch.setenv("CHAIN_HOT_WALLET_KEY", variables["CHAIN_HOT_WALLET_KEY"])


@pytest.fixture
def chain(settings: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[ChainEnv]:
    """A fresh chain: the test USDC deployed, a hot wallet with 1000 USDC and 1 ETH, settings pointed at it."""
    bridge, env = start_chain()
    _wire(env, settings, monkeypatch)
    try:
        yield env
    finally:
        bridge.__exit__(None, None, None)


@pytest.fixture
def make_chain(settings: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., ChainEnv]]:
    """make_chain(hot_token_u=..., hot_gas_wei=...): a chain whose hot wallet holds what the test says."""
    started = []

    def _make(**kwargs: Any) -> ChainEnv:
        bridge, env = start_chain(**kwargs)
        started.append(bridge)
        _wire(env, settings, monkeypatch)
        return env

    yield _make
    for bridge in started:
        bridge.__exit__(None, None, None)


@pytest.fixture
def finance(make_staff: Callable[..., Any]) -> Any:
    return make_staff(role="finance")


@pytest.fixture
def onchain_player(player: Any, fund: Callable[..., Any]) -> Any:
    """A player with 100 USDC available (funded in the ledger; on-chain deposits have their own tests)."""
    fund(player, 100_000_000)
    return player
