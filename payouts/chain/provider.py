"""The on-chain USDC payout rail behind the payouts app's `PayoutProvider` interface.

`submit` is called by `payouts.services.payout_submit` outside any transaction, once per run of the
payout worker, always with the attempt's idempotency key. For a new attempt it reads fees and
balances, then signs and records the transfer (`chain_transfer_sign`), then broadcasts it; for an
attempt already recorded it broadcasts the same signed bytes again. It never signs twice for one key.

Outcomes: ACCEPTED once the node has the transaction (paid comes later, from the confirmation
tracker); DECLINED when the hot wallet cannot pay (and the payout freeze is raised) or the transfer
reverted; ERROR when nothing was signed and a retry may help (node unreachable, fees above the cap);
AMBIGUOUS when a signed transaction may or may not have reached the node (a retry resends it);
REFUSED when the rail is not configured.
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings

from payouts.models import Withdrawal
from payouts.providers import Outcome, PayoutProvider, PayoutStatus, StatusResult, SubmitResult, register_provider

from . import rpc
from .config import CURRENCY, PROVIDER_NAME, chain_settings, hot_wallet_key, web3_client
from .errors import ChainCurrencyNotSupported, ChainNotConfigured, InvalidChainAddress, ReplacementRefused
from .models import ChainTransfer
from .payouts import (
    chain_preflight,
    chain_transfer_broadcast,
    chain_transfer_sign,
    destination_address,
    hot_wallet_starved,
)

logger = logging.getLogger(__name__)
CHAIN_RPC_CALLS_PER_SUBMIT = 6  # base fee, nonce, USDC and gas balances, the chain id, then the broadcast


class OnChainUSDCProvider(PayoutProvider):
    """USDC (ERC-20, 6 decimals) sent from the hot wallet with web3.py."""

    name = PROVIDER_NAME
    status_before_resubmit = False  # `submit` itself resends the signed bytes recorded for the key, never signs twice
    destination_shape = '{"address": "0x..."} (an EIP-55 checksummed address, not one of the platform\'s own)'

    def validate_request(self, *, currency: str, destination: Any) -> None:
        """Refuse, at request time, a currency other than USDC."""
        if currency != CURRENCY:
            raise ChainCurrencyNotSupported(
                f"The on-chain rail pays {CURRENCY} only, not {currency}; nothing was held."
            )

    def clean_destination(self, destination: Any) -> dict[str, Any]:
        """An EIP-55 address; the zero address, the token contract, the hot wallet and deposit addresses refused."""
        return {"address": destination_address(destination)}

    def destination_label(self, destination: Any) -> str:
        address = destination.get("address") if isinstance(destination, dict) else None
        return f"address {address}" if address else super().destination_label(destination)

    def submit(self, *, withdrawal: Withdrawal, idempotency_key: str) -> SubmitResult:
        try:
            cfg = chain_settings()
            destination_address(withdrawal.destination)  # refused before anything is read, signed or sent
            key = hot_wallet_key()
        except (ChainNotConfigured, InvalidChainAddress) as exc:
            return SubmitResult(Outcome.REFUSED, detail=exc.detail)
        w3 = web3_client(cfg)
        records = list(ChainTransfer.objects.filter(idempotency_key=idempotency_key).order_by("-seq"))
        if not records:
            try:
                preflight = chain_preflight(w3=w3, cfg=cfg, sender=key.address, amount_u=withdrawal.amount_u)
            except rpc.ChainUnavailable as exc:
                return SubmitResult(Outcome.ERROR, detail=f"node unreachable, nothing signed: {exc}"[:500])
            if preflight.shortfall:
                hot_wallet_starved(reason=preflight.shortfall)
                return SubmitResult(
                    Outcome.DECLINED, detail=f"insufficient balance, nothing signed: {preflight.shortfall}"
                )
            if preflight.fee_refusal:
                return SubmitResult(Outcome.ERROR, detail=preflight.fee_refusal)
            try:
                records = [
                    chain_transfer_sign(
                        withdrawal=withdrawal, idempotency_key=idempotency_key, key=key, cfg=cfg, preflight=preflight
                    )
                ]
            except (InvalidChainAddress, ReplacementRefused) as exc:
                return SubmitResult(Outcome.REFUSED, detail=exc.detail)
        # One payout attempt may hold an original and an operator's replacements, all with one nonce.
        done = [r for r in records if r.status in (ChainTransfer.Status.MINED, ChainTransfer.Status.CONFIRMED)]
        if done:
            return SubmitResult(Outcome.ACCEPTED, psp_reference=done[0].tx_hash, detail=done[0].status)
        pending = [r for r in records if r.status in (ChainTransfer.Status.SIGNED, ChainTransfer.Status.BROADCAST)]
        if not pending:  # reverted, or its nonce taken by a transaction we did not sign for this payout
            return SubmitResult(
                Outcome.DECLINED, psp_reference=records[0].tx_hash, detail=f"transfer {records[0].status} on chain"
            )
        record = pending[0]  # the latest (highest seq) still open
        sent = chain_transfer_broadcast(record=record, w3=w3)
        if sent.outcome in ("sent", "known"):
            return SubmitResult(
                Outcome.ACCEPTED, psp_reference=record.tx_hash, detail=f"nonce {record.nonce} {sent.outcome}"
            )
        return SubmitResult(
            Outcome.AMBIGUOUS,
            psp_reference=record.tx_hash,
            detail=f"nonce {record.nonce} {sent.outcome}: {sent.detail}"[:500],
        )

    def call_budget_s(self) -> float:
        """Preflight (fees, balances, nonce), then one broadcast: each RPC call within CHAIN_RPC_TIMEOUT_S."""
        return CHAIN_RPC_CALLS_PER_SUBMIT * 2 * float(settings.CHAIN_RPC_TIMEOUT_S)

    def status(self, *, withdrawal: Withdrawal, idempotency_key: str, psp_reference: str = "") -> StatusResult:
        """Answer the PSP reconciler from our own records: always pending (no final answer from here).

        The confirmation tracker alone decides paid or failed on chain, after its confirmations and
        checks; a status call must never mark an on-chain payout paid or send it to manual review while a
        signed transaction might still be mined.
        """
        records = list(ChainTransfer.objects.filter(idempotency_key=idempotency_key).order_by("-seq"))
        if not records:
            return StatusResult(PayoutStatus.PENDING, detail="nothing signed yet; the payout worker owns it")
        latest = records[0]
        return StatusResult(
            PayoutStatus.PENDING,
            psp_reference=latest.tx_hash,
            psp_status=latest.status,
            amount_u=latest.amount_u,
            currency=CURRENCY,
            detail=f"nonce {latest.nonce} {latest.status}; the confirmation tracker decides",
            evidence={"tx_hashes": [r.tx_hash for r in records]},
        )

    def resolution_blocker(self, *, withdrawal: Withdrawal) -> str:
        """Refuse resolving by hand while a signed transaction of the current attempt could still be mined."""
        open_rows = ChainTransfer.objects.filter(
            idempotency_key=withdrawal.idempotency_key, status__in=ChainTransfer.OPEN
        )
        row = open_rows.order_by("-seq").first()
        if row is None:
            return ""
        return (
            f"On-chain transaction {row.tx_hash} (nonce {row.nonce}) is {row.status} and may still be mined; "
            "it cannot be resolved by hand. Wait for the confirmation tracker, or replace it "
            "(chain_replace_tx). Nothing was changed."
        )


register_provider(OnChainUSDCProvider())
