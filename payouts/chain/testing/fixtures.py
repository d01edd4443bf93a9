"""Test helpers for the chain app: a funded chain behind the JSON-RPC bridge, wired into settings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .bridge import ChainBridge

if TYPE_CHECKING:
    from eth_typing import ChecksumAddress

CONFIRMATIONS = 3
TEST_SEED = bytes(range(32))  # deterministic test HD wallet; its xprv never reaches the app


def deposit_xpub() -> str:
    """The account-level xpub the app is configured with (the test keeps the xprv to prove addresses)."""
    from bip32 import BIP32

    return BIP32.from_seed(TEST_SEED).get_xpub_from_path("m/44'/60'/0'")


def deposit_private_key(index: int) -> bytes:
    """The private key of deposit address m/0/<index> (test side only)."""
    from bip32 import BIP32

    return BIP32.from_seed(TEST_SEED).get_privkey_from_path(f"m/44'/60'/0'/0/{index}")


@dataclass
class ChainEnv:
    """The running chain, its token and the hot wallet, for a test."""

    bridge: ChainBridge
    token: Any  # the token contract, bound to the bridge's direct (in-process) web3
    hot: Any  # the hot wallet's LocalAccount (the test sets its key in the environment)

    def token_balance(self, address: str) -> int:
        with self.bridge.lock:
            return int(self.token.functions.balanceOf(address).call())

    def gas_balance(self, address: ChecksumAddress) -> int:
        with self.bridge.lock:
            return int(self.bridge.w3.eth.get_balance(address))

    def transfers(self, *, receiver: str | None = None, sender: str | None = None) -> list[Any]:
        """Every token Transfer log in the canonical chain, optionally filtered."""
        filters = {}
        if receiver:
            filters["receiver"] = receiver
        if sender:
            filters["sender"] = sender
        with self.bridge.lock:
            return list(
                self.token.events.Transfer().get_logs(from_block=0, to_block="latest", argument_filters=filters)
            )

    def mint(self, to: str, amount_u: int) -> Any:
        return self.bridge.transact(self.token.functions.mint(to, amount_u))

    def pay_from(self, account: Any, to: str, amount_u: int) -> str:
        """Send the token from an account we hold the key of (e.g. a customer's own wallet)."""
        with self.bridge.lock:
            w3 = self.bridge.w3
            tx = self.token.functions.transfer(to, amount_u).build_transaction(
                {
                    "from": account.address,
                    "nonce": w3.eth.get_transaction_count(account.address, "pending"),
                    "gas": 100_000,
                    "maxFeePerGas": 10**10,
                    "maxPriorityFeePerGas": 10**9,
                    "chainId": w3.eth.chain_id,
                }
            )
            signed = account.sign_transaction(tx)
            return "0x" + bytes(w3.eth.send_raw_transaction(signed.raw_transaction)).hex()

    def block(self, address: str) -> None:
        self.bridge.transact(self.token.functions.block(address))


def start_chain(*, hot_token_u: int = 1_000 * 10**6, hot_gas_wei: int = 10**18) -> tuple[ChainBridge, ChainEnv]:
    """Start a fresh chain with the token deployed and a funded hot wallet (caller enters/exits the bridge)."""
    from eth_account import Account

    bridge = ChainBridge().__enter__()
    token = bridge.deploy_token()
    hot = Account.create()
    if hot_token_u:
        bridge.transact(token.functions.mint(hot.address, hot_token_u))
    if hot_gas_wei:
        bridge.send_eth(hot.address, hot_gas_wei)
    return bridge, ChainEnv(bridge=bridge, token=token, hot=hot)


def chain_env_vars(env: ChainEnv, *, confirmations: int = CONFIRMATIONS) -> dict[str, str]:
    """The environment a worker process needs to reach this chain (settings are read from it)."""
    return {
        "CHAIN_RPC_URL": env.bridge.url,
        "CHAIN_ID": str(env.bridge.chain_id),
        "CHAIN_USDC_ADDRESS": env.token.address,
        "CHAIN_CONFIRMATIONS": str(confirmations),
        "CHAIN_MAX_FEE_PER_GAS_WEI": str(10**11),
        "CHAIN_PRIORITY_FEE_WEI": str(10**9),
        "CHAIN_DEPOSIT_XPUB": deposit_xpub(),
        "CHAIN_HOT_WALLET_KEY": "0x" + bytes(env.hot.key).hex(),
    }
