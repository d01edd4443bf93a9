"""Services of the on-chain payout rail: sign-and-record, broadcast, track confirmations, replace.

Never send twice:
* `chain_transfer_sign` allocates the hot wallet's next nonce under a row lock (two workers never
  share one), signs the ERC-20 `transfer` locally and stores the raw bytes and hash, all in one short
  transaction, before anything is sent. One payout attempt (idempotency key) gets one such record.
* `chain_transfer_broadcast` sends the stored bytes, outside any transaction; a retry, a requeue or
  the tracker sends those same bytes again (same nonce, same hash), never a newly signed transaction,
  and never while another of them may be sending (the payout's lease, payouts/leases.py).
* Only `chain_transfer_replace` signs a second transaction for one payout: same nonce (so at most one
  of them can ever be mined), decided by a named staff user.

Paid means confirmed: `chain_payouts_track` (beat) marks a payout paid, through the payouts app's
own settlement (`payout_event_process`, which burns the hold once), only after the required number of
confirmations of a successful transfer of the right amount to the right address. A reverted (or
wrong) transfer goes to the manual-review queue with the receipt as evidence; a transaction that
leaves the chain before its confirmations is sent again (same bytes) and nothing is paid; one that
leaves the chain after it was paid is flagged for review (listed by `detect_stuck_finance_jobs`).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.db.models import F, Sum
from django.utils import timezone

from ops.actors import SystemActor, require_operator
from ops.approvals import DecisionKind, checker_reason, decision_propose, register_decision
from ops.audit import actor_label, audit_record
from ops.models import Switch
from ops.switches import switch_is_on, switch_set
from payouts.leases import Lease, lease_claim, lease_release
from payouts.lock_objects import withdrawal_lock

from . import rpc
from .config import PROVIDER_NAME, ChainSettings, HotWalletKey, chain_settings, hot_wallet_key, web3_client
from .errors import ChainTransferNotFound, InvalidChainAddress, ReasonRequired, ReplacementRefused
from .models import ChainTransfer, HotWallet

logger = logging.getLogger(__name__)

CHAIN_WORKER = SystemActor("chain-payout-worker")
TRACKER = SystemActor("chain-payout-tracker")
REPLACE_KIND = "chain_replace_tx"


# --- Destinations --------------------------------------------------------------------------


def destination_address(destination: Any) -> str:
    """Return the EIP-55 checksummed address of a withdrawal destination, or raise InvalidChainAddress.

    Refused: anything but `{"address": "0x..."}`, an address that is not EIP-55 checksummed, the zero
    address, the token contract itself, our hot wallet and any of our deposit addresses (money sent
    there would never leave the platform, or be lost).
    """
    from eth_utils import is_checksum_address

    if not isinstance(destination, dict) or set(destination) != {"address"}:
        raise InvalidChainAddress('An on-chain withdrawal needs destination {"address": "0x..."}; nothing was held.')
    address = destination["address"]
    if not isinstance(address, str) or not address:
        raise InvalidChainAddress('An on-chain withdrawal needs destination {"address": "0x..."}; nothing was held.')
    if not is_checksum_address(address):
        raise InvalidChainAddress(
            f"{address[:50]!r} is not an EIP-55 checksummed address (mixed case, with a valid checksum); "
            "nothing was held."
        )
    if int(address, 16) == 0:
        raise InvalidChainAddress("The zero address cannot receive a withdrawal; nothing was held.")
    refusal = _our_own_address(address)
    if refusal:
        raise InvalidChainAddress(f"{address} is {refusal}: it cannot receive a withdrawal; nothing was held.")
    return address


def _our_own_address(address: str) -> str:
    """What of ours `address` is (the token contract, the hot wallet, a deposit address), or ""."""
    from django.conf import settings

    from .config import HOT_WALLET_KEY_ENV, hot_wallet_address
    from .errors import ChainNotConfigured
    from .models import DepositAddress

    lowered = address.lower()
    if lowered == str(settings.CHAIN_USDC_ADDRESS or "").lower():
        return "the USDC token contract"
    hot_wallets = {a.lower() for a in HotWallet.objects.values_list("address", flat=True)}
    try:
        if os.environ.get(HOT_WALLET_KEY_ENV) or settings.CHAIN_HOT_WALLET_ADDRESS:
            hot_wallets.add(hot_wallet_address().lower())
    except ChainNotConfigured:
        pass  # a key that does not load is refused where it is used; the stored wallets still count
    if lowered in hot_wallets:
        return "the platform's hot wallet"
    if DepositAddress.objects.filter(address__iexact=address).exists():
        return "a deposit address of this platform"
    return ""


# --- Pre-flight: fees and balances ---------------------------------------------------------


@dataclass(frozen=True)
class Preflight:
    """What the chain says before we sign: fees within the cap, and enough token and gas."""

    max_fee_per_gas: int
    priority_fee: int
    chain_nonce: int
    token_balance_u: int
    gas_balance_wei: int
    shortfall: str = ""  # why the hot wallet cannot pay (token or gas), empty when it can
    fee_refusal: str = ""  # why the current fees are above the cap, empty when within it


def _unmined_outgoing(address: str) -> tuple[int, int]:
    """Token amount and count of our signed or broadcast transfers not yet mined (one per nonce)."""
    open_rows = ChainTransfer.objects.filter(
        from_address=address, status__in=[ChainTransfer.Status.SIGNED, ChainTransfer.Status.BROADCAST], seq=0
    )
    agg = open_rows.aggregate(total=Sum("amount_u"))
    return int(agg["total"] or 0), open_rows.count()


def chain_preflight(*, w3: Any, cfg: ChainSettings, sender: str, amount_u: int) -> Preflight:
    """Read fees, nonce and balances from the node (network I/O: call with no transaction open)."""
    base = rpc.base_fee(w3)
    priority = cfg.priority_fee_wei
    desired = 2 * base + priority
    max_fee = min(desired, cfg.max_fee_per_gas_wei)
    fee_refusal = ""
    if max_fee < base + priority:
        fee_refusal = (
            f"base fee {base} wei + tip {priority} wei is above the fee cap "
            f"CHAIN_MAX_FEE_PER_GAS_WEI={cfg.max_fee_per_gas_wei}; not signed, will retry"
        )
    chain_nonce = rpc.pending_nonce(w3, sender)
    token_u = rpc.token_balance(w3, cfg.token_address, sender)
    gas_wei = rpc.gas_balance(w3, sender)
    pending_u, pending_n = _unmined_outgoing(sender)
    need_gas = cfg.gas_limit * max_fee * (pending_n + 1)
    shortfall = ""
    if token_u - pending_u < amount_u:
        shortfall = (
            f"hot wallet {sender} holds {token_u} token units ({pending_u} already committed to unmined "
            f"transfers); {amount_u} needed"
        )
    elif gas_wei < need_gas:
        shortfall = f"hot wallet {sender} holds {gas_wei} wei of gas money; {need_gas} needed at the current fee"
    return Preflight(max_fee, priority, chain_nonce, token_u, gas_wei, shortfall, fee_refusal)


def hot_wallet_starved(*, reason: str) -> None:
    """Stop every payout: raise the payout freeze (audited) because the hot wallet cannot pay."""
    logger.error("hot wallet cannot pay: %s; PAYOUT_FREEZE raised", reason)
    if not switch_is_on(Switch.Name.PAYOUT_FREEZE):
        switch_set(name=Switch.Name.PAYOUT_FREEZE, on=True, reason=f"on-chain hot wallet: {reason}", actor=CHAIN_WORKER)


# --- Sign and record, then broadcast -------------------------------------------------------


def _wallet_locked(*, address: str, chain_id: int, chain_nonce: int) -> HotWallet:
    HotWallet.objects.get_or_create(address=address, defaults={"chain_id": chain_id, "next_nonce": chain_nonce})
    return HotWallet.objects.select_for_update().get(address=address)


def _signed(
    *, key: HotWalletKey, cfg: ChainSettings, nonce: int, to: str, amount_u: int, max_fee: int, priority: int
) -> tuple[str, str]:
    tx = {
        "type": 2,
        "chainId": cfg.chain_id,
        "nonce": nonce,
        "to": cfg.token_address,
        "value": 0,
        "gas": cfg.gas_limit,
        "maxFeePerGas": max_fee,
        "maxPriorityFeePerGas": priority,
        "data": rpc.transfer_calldata(to, amount_u),
    }
    signed = key.sign(tx)
    return "0x" + bytes(signed.raw_transaction).hex(), rpc.hex32(signed.hash)


def chain_transfer_sign(
    *, withdrawal: Any, idempotency_key: str, key: HotWalletKey, cfg: ChainSettings, preflight: Preflight
) -> ChainTransfer:
    """Allocate a nonce under the wallet's row lock, sign, and record; one record per payout attempt."""
    from payouts.models import Withdrawal

    to = destination_address(withdrawal.destination)
    with transaction.atomic():
        # The withdrawal first (the payouts app's lock order), then the wallet: never sign for a payout that
        # stopped being paid meanwhile (resolved, or another attempt).
        current = Withdrawal.objects.select_for_update().get(pk=withdrawal.pk)
        if current.state != Withdrawal.State.PAYOUT_SUBMITTED or current.idempotency_key != idempotency_key:
            raise ReplacementRefused(
                f"Withdrawal {withdrawal.pk} is {current.state} on attempt {current.idempotency_key}; "
                f"nothing signed for {idempotency_key}."
            )
        wallet = _wallet_locked(address=key.address, chain_id=cfg.chain_id, chain_nonce=preflight.chain_nonce)
        existing = ChainTransfer.objects.filter(idempotency_key=idempotency_key, seq=0).first()
        if existing is not None:  # another worker signed this attempt while we read the chain
            return existing
        nonce = max(wallet.next_nonce, preflight.chain_nonce)
        wallet.next_nonce = nonce + 1
        wallet.save(update_fields=["next_nonce", "updated_at"])
        raw_tx, tx_hash = _signed(
            key=key,
            cfg=cfg,
            nonce=nonce,
            to=to,
            amount_u=withdrawal.amount_u,
            max_fee=preflight.max_fee_per_gas,
            priority=preflight.priority_fee,
        )
        record = ChainTransfer.objects.create(
            withdrawal_id=withdrawal.pk,
            idempotency_key=idempotency_key,
            seq=0,
            chain_id=cfg.chain_id,
            from_address=key.address,
            token_address=cfg.token_address,
            to_address=to,
            amount_u=withdrawal.amount_u,
            nonce=nonce,
            gas_limit=cfg.gas_limit,
            max_fee_per_gas=preflight.max_fee_per_gas,
            max_priority_fee_per_gas=preflight.priority_fee,
            raw_tx=raw_tx,
            tx_hash=tx_hash,
            created_by=actor_label(CHAIN_WORKER),
        )
        audit_record(
            actor=CHAIN_WORKER,
            action="chain.transfer.signed",
            obj=record,
            object_type="chain.chaintransfer",
            data={
                "withdrawal_id": withdrawal.pk,
                "nonce": nonce,
                "tx_hash": tx_hash,
                "to": to,
                "amount_u": withdrawal.amount_u,
                "idempotency_key": idempotency_key,
            },
        )
    logger.info("withdrawal %s: signed transfer nonce %s hash %s", withdrawal.pk, nonce, tx_hash)
    return record


def chain_transfer_broadcast(*, record: ChainTransfer, w3: Any) -> rpc.Sent:
    """Send the stored signed bytes (outside any transaction), then record that we did."""
    sent = rpc.send_raw(
        w3, raw_tx=record.raw_tx, tx_hash=record.tx_hash, sender=record.from_address, nonce=record.nonce
    )
    now = timezone.now()
    if sent.outcome in ("sent", "known"):
        ChainTransfer.objects.filter(pk=record.pk, first_broadcast_at__isnull=True).update(first_broadcast_at=now)
        ChainTransfer.objects.filter(pk=record.pk).update(
            broadcast_count=F("broadcast_count") + 1, last_broadcast_at=now
        )
        ChainTransfer.objects.filter(pk=record.pk, status=ChainTransfer.Status.SIGNED).update(
            status=ChainTransfer.Status.BROADCAST
        )
    else:
        logger.warning("broadcast of %s (nonce %s): %s %s", record.tx_hash, record.nonce, sent.outcome, sent.detail)
    return sent


# --- Confirmation tracking -----------------------------------------------------------------


def _evidence(record: ChainTransfer, event: str, **data: Any) -> list[dict[str, Any]]:
    return [*record.evidence, {"event": event, "at": timezone.now().isoformat(), **data}]


def _settle(*, record: ChainTransfer, outcome: str, event_type: str, detail: str, payload: dict[str, Any]) -> str:
    """Hand a final answer to the payouts app's settlement (exactly once per transaction and outcome)."""
    from payouts.services import PayoutNotice, payout_event_process

    event, duplicate = payout_event_process(
        notice=PayoutNotice(
            provider=PROVIDER_NAME,
            event_id=f"{record.tx_hash}:{event_type}",
            event_type=f"chain.{event_type}",
            payload=payload,
            outcome=outcome,
            idempotency_key=record.idempotency_key,
            psp_reference=record.tx_hash,
            detail=detail,
        )
    )
    return "duplicate" if duplicate else event.result


def _siblings(record: ChainTransfer) -> Any:
    return ChainTransfer.objects.filter(
        chain_id=record.chain_id, from_address=record.from_address, nonce=record.nonce
    ).exclude(pk=record.pk)


@dataclass
class TrackReport:
    """What one tracking run did."""

    checked: int = 0
    confirmed: int = 0
    reverted: int = 0
    rebroadcast: int = 0
    reorged: int = 0
    flagged: int = 0


def _tracker_lease(record: ChainTransfer) -> Lease | None:
    """The payout's lease for one rebroadcast, or None while another call about the payout may be running."""
    with transaction.atomic():
        withdrawal = withdrawal_lock(withdrawal_id=record.withdrawal_id)
        lease = lease_claim(withdrawal=withdrawal, purpose=TRACKER.name)
    return lease if isinstance(lease, Lease) else None


def _track_open(*, w3: Any, cfg: ChainSettings, head: int, record: ChainTransfer, report: TrackReport) -> None:
    receipt = rpc.receipt_of(w3, record.tx_hash)
    if receipt is None:
        if record.status == ChainTransfer.Status.MINED:
            report.reorged += 1
            logger.warning(
                "transfer %s left the chain before %s confirmations (was in block %s); sending it again",
                record.tx_hash,
                cfg.confirmations,
                record.block_number,
            )
            ChainTransfer.objects.filter(pk=record.pk).update(
                status=ChainTransfer.Status.BROADCAST,
                block_number=None,
                block_hash="",
                evidence=_evidence(
                    record,
                    "reorged_out_before_confirmation",
                    block_number=record.block_number,
                    block_hash=record.block_hash,
                    head=head,
                ),
            )
        if record.replaced_by_id is not None:
            return  # an operator replaced it; the replacement is the one we push
        lease = _tracker_lease(record)
        if lease is None:
            return  # the payout worker is sending it right now (payouts/leases.py); the next run looks again
        try:
            sent = chain_transfer_broadcast(record=record, w3=w3)
        finally:
            lease_release(lease)
        report.rebroadcast += 1
        if sent.outcome == "nonce_taken":
            _nonce_taken(w3=w3, record=record)
        return
    if receipt["status"] != 1 or not rpc.find_transfer(
        receipt,
        token=record.token_address,
        sender=record.from_address,
        receiver=record.to_address,
        amount_u=record.amount_u,
    ):
        report.reverted += 1
        why = "reverted" if receipt["status"] != 1 else "mined without the expected Transfer log"
        logger.error(
            "transfer %s of withdrawal %s %s in block %s: manual review",
            record.tx_hash,
            record.withdrawal_id,
            why,
            receipt["block_number"],
        )
        with transaction.atomic():
            evidence = _evidence(
                record,
                "reverted" if receipt["status"] != 1 else "wrong_transfer",
                receipt={k: v for k, v in receipt.items()},
            )
            ChainTransfer.objects.filter(pk=record.pk).update(
                status=ChainTransfer.Status.REVERTED,
                block_number=receipt["block_number"],
                block_hash=receipt["block_hash"],
                evidence=evidence,
            )
            _siblings(record).filter(status__in=ChainTransfer.OPEN).update(status=ChainTransfer.Status.DROPPED)
            _settle(
                record=record,
                outcome="failed",
                event_type="reverted",
                detail=f"{why} in block {receipt['block_number']} ({receipt['block_hash']})",
                payload={"tx_hash": record.tx_hash, "nonce": record.nonce, "receipt": receipt},
            )
        return
    confirmations = head - receipt["block_number"] + 1
    if confirmations < cfg.confirmations:
        if record.status != ChainTransfer.Status.MINED or record.block_hash != receipt["block_hash"]:
            ChainTransfer.objects.filter(pk=record.pk).update(
                status=ChainTransfer.Status.MINED,
                block_number=receipt["block_number"],
                block_hash=receipt["block_hash"],
                evidence=_evidence(
                    record, "mined", block_number=receipt["block_number"], block_hash=receipt["block_hash"]
                ),
            )
        return
    report.confirmed += 1
    with transaction.atomic():
        ChainTransfer.objects.filter(pk=record.pk).update(
            status=ChainTransfer.Status.CONFIRMED,
            block_number=receipt["block_number"],
            block_hash=receipt["block_hash"],
            confirmed_at=timezone.now(),
            evidence=_evidence(
                record,
                "confirmed",
                block_number=receipt["block_number"],
                block_hash=receipt["block_hash"],
                confirmations=confirmations,
                head=head,
            ),
        )
        _siblings(record).filter(status__in=ChainTransfer.OPEN).update(status=ChainTransfer.Status.DROPPED)
        result = _settle(
            record=record,
            outcome="paid",
            event_type="confirmed",
            detail=f"{confirmations} confirmations, block {receipt['block_number']}",
            payload={
                "tx_hash": record.tx_hash,
                "nonce": record.nonce,
                "to": record.to_address,
                "amount_u": record.amount_u,
                "block_number": receipt["block_number"],
                "block_hash": receipt["block_hash"],
                "confirmations": confirmations,
            },
        )
    logger.info(
        "transfer %s of withdrawal %s confirmed (%s): %s", record.tx_hash, record.withdrawal_id, confirmations, result
    )


def _nonce_taken(*, w3: Any, record: ChainTransfer) -> None:
    """Our nonce was used by another transaction, so ours can never be mined.

    A sibling (an operator's replacement) mined: ours is dropped. Otherwise a transaction we did not
    record took the nonce: ours is dropped and the payout goes to manual review with the evidence.
    """
    for sibling in _siblings(record):
        if rpc.receipt_of(w3, sibling.tx_hash) is not None:
            ChainTransfer.objects.filter(pk=record.pk).update(status=ChainTransfer.Status.DROPPED)
            return
    reason = f"nonce {record.nonce} of {record.from_address} was used by a transaction we did not record"
    logger.error("transfer %s of withdrawal %s: %s: manual review", record.tx_hash, record.withdrawal_id, reason)
    with transaction.atomic():
        ChainTransfer.objects.filter(pk=record.pk).update(
            status=ChainTransfer.Status.DROPPED, evidence=_evidence(record, "nonce_taken", detail=reason)
        )
        _settle(
            record=record,
            outcome="failed",
            event_type="nonce_taken",
            detail=reason,
            payload={"tx_hash": record.tx_hash, "nonce": record.nonce, "from": record.from_address},
        )


def _recheck_confirmed(*, w3: Any, cfg: ChainSettings, head: int, record: ChainTransfer, report: TrackReport) -> None:
    """A paid transfer whose block is no longer canonical: re-found elsewhere is fine, gone is flagged."""
    assert record.block_number is not None, f"confirmed transfer {record.tx_hash} records no block"  # selected by it
    if rpc.block_hash_at(w3, record.block_number) == record.block_hash:
        return
    receipt = rpc.receipt_of(w3, record.tx_hash)
    if (
        receipt is not None
        and receipt["status"] == 1
        and rpc.find_transfer(
            receipt,
            token=record.token_address,
            sender=record.from_address,
            receiver=record.to_address,
            amount_u=record.amount_u,
        )
    ):
        ChainTransfer.objects.filter(pk=record.pk).update(
            block_number=receipt["block_number"],
            block_hash=receipt["block_hash"],
            evidence=_evidence(
                record, "reincluded_after_reorg", block_number=receipt["block_number"], block_hash=receipt["block_hash"]
            ),
        )
        return
    report.flagged += 1
    reason = (
        f"paid transfer {record.tx_hash} left the chain after {cfg.confirmations} confirmations "
        f"(was block {record.block_number} {record.block_hash}; head now {head}); the same signed "
        "transaction was sent again"
    )
    logger.error("withdrawal %s: %s: manual review", record.withdrawal_id, reason)
    ChainTransfer.objects.filter(pk=record.pk).update(
        review_reason=reason,
        evidence=_evidence(
            record,
            "reorged_out_after_confirmation",
            block_number=record.block_number,
            block_hash=record.block_hash,
            head=head,
            receipt=receipt,
        ),
    )
    chain_transfer_broadcast(record=record, w3=w3)


def chain_payouts_track() -> TrackReport:
    """Check every open on-chain payout and recently paid one; safe to run twice (beat, every minute)."""
    cfg = chain_settings()
    w3 = web3_client(cfg)
    report = TrackReport()
    head = rpc.head_block(w3)
    for record in ChainTransfer.objects.filter(status__in=ChainTransfer.OPEN).order_by("from_address", "nonce", "seq"):
        report.checked += 1
        _track_open(w3=w3, cfg=cfg, head=head, record=record, report=report)
    recent = ChainTransfer.objects.filter(
        status=ChainTransfer.Status.CONFIRMED, review_reason="", block_number__gt=head - cfg.reorg_watch_blocks
    )  # includes blocks above the head, which a reorganisation to a shorter chain leaves behind
    for record in recent.order_by("nonce"):
        _recheck_confirmed(w3=w3, cfg=cfg, head=head, record=record, report=report)
    return report


# --- Operator decision (four eyes): replace a stuck transaction ----------------------------


def _check_replaceable(*, record: ChainTransfer, cfg: ChainSettings, max_fee: int, tip: int) -> None:
    """Refuse a replacement that is not possible now (changes nothing)."""
    from payouts.models import Withdrawal

    if record.status not in (ChainTransfer.Status.SIGNED, ChainTransfer.Status.BROADCAST) or record.replaced_by_id:
        raise ReplacementRefused(
            f"Transfer {record.tx_hash} is {record.status}"
            + (" and already replaced" if record.replaced_by_id else "")
            + "; only a stuck, unmined, latest transaction can be replaced. Nothing was changed."
        )
    if record.withdrawal.state != Withdrawal.State.PAYOUT_SUBMITTED:
        raise ReplacementRefused(
            f"Withdrawal {record.withdrawal_id} is {record.withdrawal.state}. Nothing was changed."
        )
    if max_fee > cfg.max_fee_per_gas_wei or tip > max_fee or tip < 0:
        raise ReplacementRefused(
            "The fees must stay within CHAIN_MAX_FEE_PER_GAS_WEI (tip <= max fee). Nothing was changed."
        )
    if max_fee * 10 < int(record.max_fee_per_gas) * 11 or tip * 10 < int(record.max_priority_fee_per_gas) * 11:
        raise ReplacementRefused(
            "A replacement must raise both fees by at least 10% (nodes refuse less). Nothing was changed."
        )


def chain_transfer_replace(
    *, transfer_id: int, acting_user: Any, max_fee_per_gas_wei: int, max_priority_fee_per_gas_wei: int, reason: str
) -> Any:
    """Propose, or as a second operator approve, replacing a stuck transfer: same nonce, higher fees.

    A maker-checker decision (`ops.approvals`, kind `chain_replace_tx`, always two operators allowed to
    retry payouts, never the player's own): the first operator's call records a proposal and signs
    nothing; a different operator proposing the same fees (or `decision_approve`) applies it. Applying
    signs a transaction with the same nonce, recipient and amount, so at most one of the two can ever be
    mined; it is broadcast after commit (and by the tracker). Returns the Proposal.
    """
    record = ChainTransfer.objects.select_related("withdrawal").filter(pk=transfer_id).first()
    if record is None:
        raise ChainTransferNotFound(f"No on-chain transfer {transfer_id}.")
    _check_replaceable(
        record=record, cfg=chain_settings(), max_fee=max_fee_per_gas_wei, tip=max_priority_fee_per_gas_wei
    )
    return decision_propose(
        kind=REPLACE_KIND,
        subject=f"chain_tx:{record.pk}",
        payload={
            "transfer_id": record.pk,
            "tx_hash": record.tx_hash,
            "nonce": record.nonce,
            "max_fee_per_gas_wei": max_fee_per_gas_wei,
            "max_priority_fee_per_gas_wei": max_priority_fee_per_gas_wei,
        },
        amounts={record.withdrawal.currency: record.amount_u},
        parties=[record.withdrawal.user_id],
        reason=reason,
        acting_user=acting_user,
        evidence=f"{record.status} since {record.created_at:%Y-%m-%d %H:%M:%S}Z, {record.broadcast_count} broadcasts",
    )


def _lock_replace_subject(subject: str) -> None:
    ChainTransfer.objects.select_for_update().filter(pk=int(subject.removeprefix("chain_tx:"))).first()


def _apply_replace(proposal: Any, checker: Any) -> dict[str, Any]:
    """Sign and record the replacement (in the approving operator's transaction); broadcast after commit."""
    payload = proposal.payload
    cfg = chain_settings()
    key = hot_wallet_key()
    record = ChainTransfer.objects.select_for_update().select_related("withdrawal").get(pk=payload["transfer_id"])
    max_fee, tip = int(payload["max_fee_per_gas_wei"]), int(payload["max_priority_fee_per_gas_wei"])
    _check_replaceable(record=record, cfg=cfg, max_fee=max_fee, tip=tip)
    HotWallet.objects.select_for_update().get(address=record.from_address)
    raw_tx, tx_hash = _signed(
        key=key,
        cfg=cfg,
        nonce=record.nonce,
        to=record.to_address,
        amount_u=record.amount_u,
        max_fee=max_fee,
        priority=tip,
    )
    seq = (
        ChainTransfer.objects.filter(idempotency_key=record.idempotency_key)
        .order_by("-seq")
        .values_list("seq", flat=True)
        .first()
        or 0
    ) + 1
    replacement = ChainTransfer.objects.create(
        withdrawal_id=record.withdrawal_id,
        idempotency_key=record.idempotency_key,
        seq=seq,
        chain_id=record.chain_id,
        from_address=record.from_address,
        token_address=record.token_address,
        to_address=record.to_address,
        amount_u=record.amount_u,
        nonce=record.nonce,
        gas_limit=record.gas_limit,
        max_fee_per_gas=max_fee,
        max_priority_fee_per_gas=tip,
        raw_tx=raw_tx,
        tx_hash=tx_hash,
        created_by=f"{proposal.proposed_by.email} + {actor_label(checker)}",
    )
    record.replaced_by = replacement
    record.save(update_fields=["replaced_by", "updated_at"])
    audit_record(
        actor=checker,
        action="chain.transfer.replace",
        obj=record,
        object_type="chain.chaintransfer",
        reason=checker_reason(proposal),
        data={
            "withdrawal_id": record.withdrawal_id,
            "nonce": record.nonce,
            "old_hash": record.tx_hash,
            "new_hash": tx_hash,
            "max_fee_per_gas": max_fee,
            "proposed_by": proposal.proposed_by.email,
            "proposal_reason": proposal.reason,
            "proposal_id": proposal.pk,
        },
    )
    replacement_id = replacement.pk
    transaction.on_commit(lambda: _broadcast_by_id(replacement_id), robust=True)
    return {"replacement_tx_hash": tx_hash, "nonce": record.nonce}


def _broadcast_by_id(transfer_id: int) -> None:
    record = ChainTransfer.objects.get(pk=transfer_id)
    chain_transfer_broadcast(record=record, w3=web3_client())


def register_chain_decisions() -> None:
    """Offer the replacement of a stuck transaction to the maker-checker (always two operators)."""
    register_decision(
        DecisionKind(
            name=REPLACE_KIND,
            label="replace a stuck on-chain payout",
            permission="payouts.retry_payout",
            lock=_lock_replace_subject,
            apply=_apply_replace,
            always_two=True,
        )
    )


def chain_transfer_mark_reviewed(*, transfer_id: int, acting_user: Any, reason: str) -> ChainTransfer:
    """Acknowledge a flagged transfer (after acting on it), with a reason, audited."""
    require_operator(acting_user, permission="payouts.resolve_withdrawal", what="review on-chain payouts")
    if not isinstance(reason, str) or not reason.strip():
        raise ReasonRequired("Give a reason; it is kept in the audit log. Nothing was changed.")
    with transaction.atomic():
        record = ChainTransfer.objects.select_for_update().filter(pk=transfer_id).first()
        if record is None or not record.review_reason or record.reviewed_at is not None:
            raise ChainTransferNotFound(f"On-chain transfer {transfer_id} does not wait for review.")
        record.reviewed_at = timezone.now()
        record.reviewed_by = actor_label(acting_user)
        record.save(update_fields=["reviewed_at", "reviewed_by", "updated_at"])
        audit_record(
            actor=acting_user,
            action="chain.transfer.reviewed",
            obj=record,
            object_type="chain.chaintransfer",
            reason=reason.strip(),
            data={"tx_hash": record.tx_hash},
        )
    return record
