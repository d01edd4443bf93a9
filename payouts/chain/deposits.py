"""On-chain USDC deposits: per-player addresses from an xpub, and the watcher that credits them.

Addresses: each player's deposit address is the public child `m/0/<user id>` of the configured
extended public key (`CHAIN_DEPOSIT_XPUB`). The server can derive addresses but holds no private key
for them; the matching keys (for sweeping) stay with whoever holds the xprv, offline.

Watcher (`chain_deposits_scan`, on beat): reads the token's `Transfer` logs to our deposit addresses
from the block after the stored cursor to the head. A log is recorded as `seen`; once it has the
required confirmations and is still in the canonical chain it is credited exactly once (unique
(chain, tx hash, log index) and a ledger reference derived from them). A seen log that is no longer
in the chain is `orphaned`: nothing is credited. The cursor only advances to the deepest confirmed
block, so unconfirmed blocks are read again next run, and it is stored, so a restart resumes there.
A credited deposit whose block later leaves the chain is flagged for manual review (never debited
automatically); `detect_stuck_finance_jobs` lists it.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from ledger.services import external_account, transfer, user_account
from ops.actors import SystemActor, require_operator, require_player
from ops.audit import actor_label, audit_record

from . import rpc
from .config import CURRENCY, PROVIDER_NAME, ChainSettings, chain_settings, web3_client
from .errors import ChainError, ChainNotConfigured, ReasonRequired
from .models import ChainCursor, ChainDeposit, DepositAddress

logger = logging.getLogger(__name__)

CURSOR_NAME = "usdc-deposits"
WATCHER = SystemActor("chain-deposit-watcher")


# --- Addresses -----------------------------------------------------------------------------


def _xpub() -> str:
    xpub = str(settings.CHAIN_DEPOSIT_XPUB or "")
    if not xpub:
        raise ChainNotConfigured("Set CHAIN_DEPOSIT_XPUB (an extended public key) to give players deposit addresses.")
    if xpub.startswith(("xprv", "tprv")):
        raise ChainNotConfigured("CHAIN_DEPOSIT_XPUB must be a public key (xpub), never a private one.")
    return xpub


def xpub_fingerprint(xpub: str) -> str:
    return hashlib.sha256(xpub.encode()).hexdigest()[:16]


def derive_address(*, xpub: str, index: int) -> str:
    """The EIP-55 address of the public child `m/0/<index>` of an xpub (public derivation only)."""
    from bip32 import BIP32
    from coincurve import PublicKey
    from eth_utils import keccak, to_checksum_address

    if not 0 <= index < 2**31:
        raise ValueError("index must be a non-hardened child index")
    compressed = BIP32.from_xpub(xpub).get_pubkey_from_path(f"m/0/{index}")
    uncompressed = PublicKey(compressed).format(compressed=False)
    return to_checksum_address(keccak(uncompressed[1:])[-20:])


def deposit_address_for(*, user: Any) -> DepositAddress:
    """Return the player's deposit address, deriving and storing it on first use."""
    require_player(user)
    xpub = _xpub()
    fingerprint = xpub_fingerprint(xpub)
    existing = DepositAddress.objects.filter(user=user).first()
    if existing is not None:
        return existing
    address = derive_address(xpub=xpub, index=int(user.pk))
    try:
        with transaction.atomic():
            row = DepositAddress.objects.create(
                user=user, xpub_fingerprint=fingerprint, index=int(user.pk), address=address
            )
            audit_record(
                actor=user,
                action="chain.deposit_address.created",
                obj=row,
                object_type="chain.depositaddress",
                data={"address": address, "index": int(user.pk)},
            )
    except IntegrityError:
        row = DepositAddress.objects.get(user=user)
    return row


# --- The watcher ---------------------------------------------------------------------------


@dataclass
class ScanReport:
    """What one watcher run did."""

    from_block: int = 0
    to_block: int = 0
    head: int = 0
    seen: int = 0
    credited: int = 0
    orphaned: int = 0
    flagged: int = 0
    rewound: bool = False


def _logs(w3: Any, *, cfg: ChainSettings, addresses: list[str], from_block: int, to_block: int) -> list[dict[str, Any]]:
    if not addresses or from_block > to_block:
        return []
    raw = rpc.call(
        w3.eth.get_logs,
        {
            "address": cfg.token_address,
            "fromBlock": from_block,
            "toBlock": to_block,
            "topics": [rpc.TRANSFER_TOPIC, None, [rpc.address_topic(a) for a in addresses]],
        },
    )
    out = []
    for log in raw:
        topics = [rpc.hex32(t) for t in log["topics"]]
        if len(topics) != 3 or topics[0] != rpc.TRANSFER_TOPIC:
            continue
        out.append(
            {
                "tx_hash": rpc.hex32(log["transactionHash"]),
                "log_index": int(log["logIndex"]),
                "block_number": int(log["blockNumber"]),
                "block_hash": rpc.hex32(log["blockHash"]),
                "from": rpc.topic_address(topics[1]),
                "to": rpc.topic_address(topics[2]),
                "amount_u": int(rpc.hex32(log["data"]), 16),
            }
        )
    return out


def _credit(*, deposit_id: int) -> bool:
    """Credit one confirmed deposit once (psp:chain -> player's available); return whether it moved money."""
    with transaction.atomic():
        deposit = ChainDeposit.objects.select_for_update().get(pk=deposit_id)
        if deposit.status != ChainDeposit.Status.SEEN:
            return False
        journal = transfer(
            source=external_account(provider=PROVIDER_NAME, currency=deposit.currency),
            destination=user_account(user=deposit.user, currency=deposit.currency),
            amount_u=deposit.amount_u,
            type="deposit",
            reference=f"chain-deposit:{deposit.chain_id}:{deposit.tx_hash}:{deposit.log_index}",
            actor=WATCHER,
            metadata={
                "tx_hash": deposit.tx_hash,
                "log_index": deposit.log_index,
                "block": deposit.block_number,
                "from": deposit.from_address,
                "to": deposit.to_address,
            },
        )
        deposit.status = ChainDeposit.Status.CREDITED
        deposit.journal = journal
        deposit.credited_at = timezone.now()
        deposit.save(update_fields=["status", "journal", "credited_at"])
        audit_record(
            actor=WATCHER,
            action="chain.deposit.credited",
            obj=deposit,
            object_type="chain.chaindeposit",
            data={
                "amount_u": deposit.amount_u,
                "user": str(deposit.user.public_id),
                "tx_hash": deposit.tx_hash,
                "log_index": deposit.log_index,
            },
        )
    return True


def _flag(deposit: ChainDeposit, reason: str, **data: Any) -> None:
    ChainDeposit.objects.filter(pk=deposit.pk, review_reason="").update(
        review_reason=reason,
        evidence=[*deposit.evidence, {"event": "reorged_out_after_credit", "at": timezone.now().isoformat(), **data}],
    )
    logger.error("credited deposit %s:%s: %s: manual review", deposit.tx_hash, deposit.log_index, reason)


def chain_deposits_scan() -> ScanReport:
    """Read new Transfer logs, credit the confirmed ones once, and advance the stored cursor.

    Safe to run twice, even at once: each credit locks its row and is unique by (tx hash, log index).
    """
    cfg = chain_settings()
    w3 = web3_client(cfg)
    report = ScanReport()
    head = rpc.head_block(w3)
    report.head = head
    start = int(settings.CHAIN_DEPOSIT_START_BLOCK)
    cursor, _ = ChainCursor.objects.get_or_create(name=CURSOR_NAME, defaults={"last_block": start - 1})
    last = cursor.last_block
    if last >= 0 and cursor.last_block_hash and rpc.block_hash_at(w3, last) != cursor.last_block_hash:
        # The chain was reorganised below our cursor: read the watch window again (credits are unique).
        last = max(start - 1, min(last, head) - cfg.reorg_watch_blocks)
        report.rewound = True
        logger.error(
            "deposit watcher: block %s is no longer canonical; rescanning from %s", cursor.last_block, last + 1
        )
    safe = head - cfg.confirmations + 1  # the deepest block with enough confirmations
    from_block = last + 1
    report.from_block, report.to_block = from_block, head

    addresses = {row.address.lower(): row for row in DepositAddress.objects.all()}
    logs = _logs(
        w3, cfg=cfg, addresses=[row.address for row in addresses.values()], from_block=from_block, to_block=head
    )
    current = {(log["tx_hash"], log["log_index"]): log for log in logs}
    for log in logs:
        owner = addresses.get(log["to"].lower())
        if owner is None or log["amount_u"] <= 0:
            continue
        deposit, created = ChainDeposit.objects.get_or_create(
            chain_id=cfg.chain_id,
            tx_hash=log["tx_hash"],
            log_index=log["log_index"],
            defaults={
                "token_address": cfg.token_address,
                "from_address": log["from"],
                "to_address": log["to"],
                "user_id": owner.user_id,
                "amount_u": log["amount_u"],
                "currency": CURRENCY,
                "block_number": log["block_number"],
                "block_hash": log["block_hash"],
            },
        )
        if created:
            report.seen += 1
        elif deposit.status == ChainDeposit.Status.ORPHANED or deposit.block_hash != log["block_hash"]:
            # Mined again (or moved to another block) after a reorganisation: wait for confirmations anew.
            ChainDeposit.objects.filter(
                pk=deposit.pk, status__in=[ChainDeposit.Status.SEEN, ChainDeposit.Status.ORPHANED]
            ).update(status=ChainDeposit.Status.SEEN, block_number=log["block_number"], block_hash=log["block_hash"])

    # Seen deposits in the range just read that are gone from it were reorganised away: credit nothing.
    for deposit in ChainDeposit.objects.filter(
        chain_id=cfg.chain_id, status=ChainDeposit.Status.SEEN, block_number__gte=from_block
    ):
        if (deposit.tx_hash, deposit.log_index) not in current:
            ChainDeposit.objects.filter(pk=deposit.pk, status=ChainDeposit.Status.SEEN).update(
                status=ChainDeposit.Status.ORPHANED,
                evidence=[
                    *deposit.evidence,
                    {
                        "event": "reorged_out_before_confirmation",
                        "block_number": deposit.block_number,
                        "block_hash": deposit.block_hash,
                        "head": head,
                        "at": timezone.now().isoformat(),
                    },
                ],
            )
            report.orphaned += 1
            logger.warning(
                "deposit %s:%s left the chain before confirmation; nothing credited", deposit.tx_hash, deposit.log_index
            )

    # Credit what is confirmed and still canonical (it was in this very read).
    for deposit in ChainDeposit.objects.filter(
        chain_id=cfg.chain_id, status=ChainDeposit.Status.SEEN, block_number__lte=safe
    ).order_by("block_number", "log_index"):
        now_log = current.get((deposit.tx_hash, deposit.log_index))
        if now_log is None or now_log["block_hash"] != deposit.block_hash:
            continue
        if _credit(deposit_id=deposit.pk):
            report.credited += 1

    # Credited deposits in the reorg watch window whose block left the chain: flag for review.
    for deposit in ChainDeposit.objects.filter(
        chain_id=cfg.chain_id,
        status=ChainDeposit.Status.CREDITED,
        review_reason="",
        block_number__gt=head - cfg.reorg_watch_blocks,
    ):
        if deposit.block_number <= head and rpc.block_hash_at(w3, deposit.block_number) == deposit.block_hash:
            continue
        now_log = current.get((deposit.tx_hash, deposit.log_index))
        if now_log is not None and now_log["block_number"] <= safe:
            continue  # re-included and confirmed again: still on chain, credited once
        _flag(
            deposit,
            f"credited deposit left the chain after {cfg.confirmations} confirmations "
            f"(was block {deposit.block_number} {deposit.block_hash}, head now {head})",
            block_number=deposit.block_number,
            block_hash=deposit.block_hash,
            head=head,
        )
        report.flagged += 1

    new_last = max(last, min(safe, head)) if not report.rewound else min(safe, head)
    new_last = max(new_last, start - 1)
    ChainCursor.objects.filter(pk=cursor.pk).update(
        last_block=new_last,
        last_block_hash=(rpc.block_hash_at(w3, new_last) or "") if new_last >= 0 else "",
        updated_at=timezone.now(),
    )
    return report


def chain_deposit_mark_reviewed(*, deposit_id: int, acting_user: Any, reason: str) -> ChainDeposit:
    """Acknowledge a flagged deposit (after deciding, e.g. with a manual adjustment), with a reason, audited."""
    require_operator(acting_user, permission="payouts.resolve_withdrawal", what="review on-chain deposits")
    if not isinstance(reason, str) or not reason.strip():
        raise ReasonRequired("Give a reason; it is kept in the audit log. Nothing was changed.")
    with transaction.atomic():
        deposit = ChainDeposit.objects.select_for_update().filter(pk=deposit_id).first()
        if deposit is None or not deposit.review_reason or deposit.reviewed_at is not None:
            raise ChainError(f"On-chain deposit {deposit_id} does not wait for review.")
        deposit.reviewed_at = timezone.now()
        deposit.reviewed_by = actor_label(acting_user)
        deposit.save(update_fields=["reviewed_at", "reviewed_by"])
        audit_record(
            actor=acting_user,
            action="chain.deposit.reviewed",
            obj=deposit,
            object_type="chain.chaindeposit",
            reason=reason.strip(),
            data={"tx_hash": deposit.tx_hash, "log_index": deposit.log_index, "amount_u": deposit.amount_u},
        )
    return deposit
