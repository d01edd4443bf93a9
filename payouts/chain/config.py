"""On-chain configuration and the JSON-RPC client.

Settings (django-environ, `config/settings/base.py`): `CHAIN_RPC_URL`, `CHAIN_ID`, `CHAIN_USDC_ADDRESS`,
`CHAIN_CONFIRMATIONS`, `CHAIN_MAX_FEE_PER_GAS_WEI` (the fee cap), `CHAIN_PRIORITY_FEE_WEI`,
`CHAIN_GAS_LIMIT`, `CHAIN_DEPOSIT_XPUB`, `CHAIN_DEPOSIT_START_BLOCK`, `CHAIN_REORG_WATCH_BLOCKS`,
`CHAIN_RPC_TIMEOUT_S`.

The hot wallet's private key is read from the process environment (`CHAIN_HOT_WALLET_KEY`) at the
moment of signing, kept only in a `HotWalletKey` whose repr hides it, and never logged or stored.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from django.conf import settings
from eth_utils import is_checksum_address

from .errors import ChainNotConfigured

HOT_WALLET_KEY_ENV = "CHAIN_HOT_WALLET_KEY"
PROVIDER_NAME = "chain"
CURRENCY = "USDC"
TOKEN_DECIMALS = 6  # equal to the ledger's USDC exponent: one token unit is one micro-USDC


@dataclass(frozen=True)
class ChainSettings:
    """What the on-chain rail needs, validated."""

    rpc_url: str
    chain_id: int
    token_address: str
    confirmations: int
    max_fee_per_gas_wei: int
    priority_fee_wei: int
    gas_limit: int
    rpc_timeout_s: float
    reorg_watch_blocks: int


def chain_settings() -> ChainSettings:
    """Return the validated configuration, or raise ChainNotConfigured naming what is missing."""
    rpc_url = str(settings.CHAIN_RPC_URL or "")
    chain_id = int(settings.CHAIN_ID or 0)
    token = str(settings.CHAIN_USDC_ADDRESS or "")
    missing = [
        name
        for name, value in (("CHAIN_RPC_URL", rpc_url), ("CHAIN_ID", chain_id), ("CHAIN_USDC_ADDRESS", token))
        if not value
    ]
    if missing:
        raise ChainNotConfigured(f"Set {', '.join(missing)} to use the on-chain rail.")
    if not is_checksum_address(token):
        raise ChainNotConfigured("CHAIN_USDC_ADDRESS must be an EIP-55 checksummed address.")
    confirmations = int(settings.CHAIN_CONFIRMATIONS)
    if confirmations < 1:
        raise ChainNotConfigured("CHAIN_CONFIRMATIONS must be at least 1.")
    return ChainSettings(
        rpc_url=rpc_url,
        chain_id=chain_id,
        token_address=token,
        confirmations=confirmations,
        max_fee_per_gas_wei=int(settings.CHAIN_MAX_FEE_PER_GAS_WEI),
        priority_fee_wei=int(settings.CHAIN_PRIORITY_FEE_WEI),
        gas_limit=int(settings.CHAIN_GAS_LIMIT),
        rpc_timeout_s=float(settings.CHAIN_RPC_TIMEOUT_S),
        reorg_watch_blocks=int(settings.CHAIN_REORG_WATCH_BLOCKS),
    )


class HotWalletKey:
    """The hot wallet's signing key, read from the environment; its repr and str never show it."""

    __slots__ = ("_account",)

    def __init__(self, account: Any) -> None:
        self._account = account

    @property
    def address(self) -> str:
        return str(self._account.address)

    def sign(self, tx: dict[str, Any]) -> Any:
        """Sign a transaction dict locally (no network)."""
        return self._account.sign_transaction(tx)

    def __repr__(self) -> str:
        return f"HotWalletKey({self.address}, key hidden)"

    __str__ = __repr__


def hot_wallet_key() -> HotWalletKey:
    """Load the hot wallet's key from `CHAIN_HOT_WALLET_KEY`; raise ChainNotConfigured (without the value)."""
    from eth_account import Account

    raw = os.environ.get(HOT_WALLET_KEY_ENV, "").strip()
    if not raw:
        raise ChainNotConfigured(f"{HOT_WALLET_KEY_ENV} is not set in the environment.")
    try:
        return HotWalletKey(Account.from_key(raw))
    except Exception:  # never echo the key or the library's message about it
        raise ChainNotConfigured(f"{HOT_WALLET_KEY_ENV} is not a valid private key.") from None


def hot_wallet_address() -> str:
    """The hot wallet's public address (from its key, or `CHAIN_HOT_WALLET_ADDRESS` where no key is held)."""
    configured = str(settings.CHAIN_HOT_WALLET_ADDRESS or "")
    if os.environ.get(HOT_WALLET_KEY_ENV):
        return hot_wallet_key().address
    if configured:
        return configured
    raise ChainNotConfigured(f"Neither {HOT_WALLET_KEY_ENV} nor CHAIN_HOT_WALLET_ADDRESS is set.")


@lru_cache(maxsize=8)
def _web3_for(rpc_url: str, timeout_s: float) -> Any:
    from web3 import HTTPProvider, Web3

    return Web3(HTTPProvider(rpc_url, request_kwargs={"timeout": timeout_s}))


def web3_client(cfg: ChainSettings | None = None) -> Any:
    """Return a Web3 client for the configured JSON-RPC endpoint (one per process and URL)."""
    cfg = cfg or chain_settings()
    return _web3_for(cfg.rpc_url, cfg.rpc_timeout_s)
