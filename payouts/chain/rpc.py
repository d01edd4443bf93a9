"""Small, typed reads and writes against the JSON-RPC node (no database access here).

Every function takes the Web3 client; connection failures raise `ChainUnavailable`, so callers can
tell "the node said no" from "we could not ask".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import requests
from eth_abi import encode as abi_encode
from eth_utils import keccak, to_checksum_address

TRANSFER_TOPIC = "0x" + keccak(text="Transfer(address,address,uint256)").hex()
TRANSFER_SELECTOR = "0x" + keccak(text="transfer(address,uint256)")[:4].hex()
BALANCE_OF_SELECTOR = "0x" + keccak(text="balanceOf(address)")[:4].hex()


class ChainUnavailable(Exception):
    """The node could not be reached (connection refused, dropped, timed out)."""


def _network_errors() -> tuple[type[BaseException], ...]:
    from web3.exceptions import ProviderConnectionError

    return (requests.RequestException, ProviderConnectionError, OSError)


def call(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Run one web3 call, turning network failures into ChainUnavailable."""
    try:
        return fn(*args, **kwargs)
    except _network_errors() as exc:
        raise ChainUnavailable(f"{type(exc).__name__}: {exc}"[:300]) from exc


def hex32(value: Any) -> str:
    """A 32-byte value (hash) as 0x-prefixed lowercase hex."""
    if isinstance(value, str):
        return value.lower() if value.startswith("0x") else "0x" + value.lower()
    return "0x" + bytes(value).hex()


def address_topic(address: str) -> str:
    """The indexed-address topic for an address."""
    return "0x" + "00" * 12 + address.lower().removeprefix("0x")


def topic_address(topic: Any) -> str:
    return to_checksum_address("0x" + hex32(topic)[-40:])


def transfer_calldata(to: str, amount_u: int) -> str:
    """ABI-encoded `transfer(to, amount)` call data."""
    return TRANSFER_SELECTOR + abi_encode(["address", "uint256"], [to, amount_u]).hex()


def token_balance(w3: Any, token: str, owner: str) -> int:
    data = BALANCE_OF_SELECTOR + abi_encode(["address"], [owner]).hex()
    raw = call(w3.eth.call, {"to": token, "data": data})
    return int.from_bytes(bytes(raw), "big") if raw else 0


def gas_balance(w3: Any, owner: str) -> int:
    return int(call(w3.eth.get_balance, owner))


def head_block(w3: Any) -> int:
    return int(call(lambda: w3.eth.block_number))


def block_hash_at(w3: Any, number: int) -> str | None:
    """The canonical block hash at a height, or None above the head."""
    from web3.exceptions import BlockNotFound

    try:
        block = call(w3.eth.get_block, number)
    except BlockNotFound:
        return None
    return hex32(block["hash"]) if block else None


def base_fee(w3: Any) -> int:
    block = call(w3.eth.get_block, "latest")
    return int(block.get("baseFeePerGas") or 0)


def pending_nonce(w3: Any, address: str) -> int:
    return int(call(w3.eth.get_transaction_count, address, "pending"))


def receipt_of(w3: Any, tx_hash: str) -> dict[str, Any] | None:
    """The mined transaction's receipt, or None when the node does not know it as mined."""
    from web3.exceptions import TransactionNotFound

    try:
        receipt = call(w3.eth.get_transaction_receipt, tx_hash)
    except TransactionNotFound:
        return None
    if receipt is None or receipt.get("blockNumber") is None:
        return None
    return {
        "status": int(receipt["status"]),
        "block_number": int(receipt["blockNumber"]),
        "block_hash": hex32(receipt["blockHash"]),
        "gas_used": int(receipt.get("gasUsed") or 0),
        "logs": [
            {
                "address": str(log["address"]),
                "topics": [hex32(t) for t in log["topics"]],
                "data": hex32(log["data"]),
                "log_index": int(log["logIndex"]),
            }
            for log in receipt.get("logs") or []
        ],
    }


def tx_known(w3: Any, tx_hash: str) -> bool:
    """Whether the node knows the transaction (mined or in its pool)."""
    from web3.exceptions import TransactionNotFound

    try:
        return call(w3.eth.get_transaction, tx_hash) is not None
    except TransactionNotFound:
        return False


@dataclass(frozen=True)
class Sent:
    """What the node said to one broadcast of signed bytes."""

    outcome: str  # sent | known | nonce_taken | rejected | unreachable
    detail: str = ""


def send_raw(w3: Any, *, raw_tx: str, tx_hash: str, sender: str, nonce: int) -> Sent:
    """Broadcast signed bytes; an 'already known' or 'nonce too low' for our own hash counts as sent.

    `nonce_taken` means the account's mined nonce has passed ours with another transaction: ours can never
    be mined. A refusal while an earlier nonce is still missing (a gap) is `rejected`: sending the earlier
    transaction first heals it.
    """
    from web3.exceptions import Web3RPCError

    try:
        call(w3.eth.send_raw_transaction, raw_tx)
    except ChainUnavailable as exc:
        return Sent("unreachable", str(exc))
    except Web3RPCError as exc:
        message = str(getattr(exc, "message", "") or exc)[:300]
        try:
            if tx_known(w3, tx_hash):
                return Sent("known", message)
            mined_nonce = int(call(w3.eth.get_transaction_count, sender, "latest"))
        except ChainUnavailable as inner:
            return Sent("unreachable", str(inner))
        if mined_nonce > nonce:
            return Sent("nonce_taken", message)
        return Sent("rejected", message)
    return Sent("sent")


def find_transfer(receipt: dict[str, Any], *, token: str, sender: str, receiver: str, amount_u: int) -> bool:
    """Whether the receipt holds the token's Transfer(sender -> receiver, amount)."""
    for log in receipt["logs"]:
        topics = log["topics"]
        if (
            log["address"].lower() == token.lower()
            and len(topics) == 3
            and topics[0] == TRANSFER_TOPIC
            and topic_address(topics[1]).lower() == sender.lower()
            and topic_address(topics[2]).lower() == receiver.lower()
            and int(log["data"], 16) == amount_u
        ):
            return True
    return False
