"""Reads of the chain app: hot-wallet balances, unconfirmed and flagged transactions for the detector."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from ops.stuck import StuckFinding, register_stuck_source

from . import rpc
from .config import chain_settings, hot_wallet_address, web3_client
from .models import ChainDeposit, ChainTransfer


@dataclass(frozen=True)
class WalletBalances:
    """The hot wallet's balances on chain, and whether each is below its alert level."""

    address: str
    token_u: int
    gas_wei: int
    token_low: bool
    gas_low: bool


def hot_wallet_balances() -> WalletBalances:
    """Read the hot wallet's token and gas balances from the node (network I/O)."""
    cfg = chain_settings()
    w3 = web3_client(cfg)
    address = hot_wallet_address()
    token_u = rpc.token_balance(w3, cfg.token_address, address)
    gas_wei = rpc.gas_balance(w3, address)
    return WalletBalances(
        address=address,
        token_u=token_u,
        gas_wei=gas_wei,
        token_low=token_u < int(settings.CHAIN_LOW_TOKEN_BALANCE_U),
        gas_low=gas_wei < int(settings.CHAIN_LOW_GAS_BALANCE_WEI),
    )


def stuck_unconfirmed_after_s() -> int:
    return int(float(settings.CHAIN_STUCK_UNCONFIRMED_AFTER_MINUTES) * 60)


@register_stuck_source("chain", order=50)
def chain_stuck_findings(*, now: datetime | None = None) -> list[StuckFinding]:
    """Unconfirmed transactions past the threshold, and transfers or deposits flagged for review."""
    now = now or timezone.now()
    limit_s = stuck_unconfirmed_after_s()
    stuck = Q(status__in=ChainTransfer.OPEN, replaced_by__isnull=True, created_at__lt=now - timedelta(seconds=limit_s))
    flagged = ~Q(review_reason="") & Q(reviewed_at__isnull=True)
    findings = []
    rows = ChainTransfer.objects.filter(stuck | flagged).defer("raw_tx", "evidence").order_by("created_at", "id")
    for row in rows:  # one query
        if row.review_reason and row.reviewed_at is None:
            findings.append(
                StuckFinding(
                    kind="chain_tx",
                    id=row.tx_hash,
                    state="needs_review",
                    age_s=int((now - row.updated_at).total_seconds()),
                    limit_s=0,
                    detail=f"withdrawal={row.withdrawal_id} nonce={row.nonce} {row.review_reason}",
                )
            )
        else:
            findings.append(
                StuckFinding(
                    kind="chain_tx",
                    id=row.tx_hash,
                    state=row.status,
                    age_s=int((now - row.created_at).total_seconds()),
                    limit_s=limit_s,
                    detail=f"withdrawal={row.withdrawal_id} nonce={row.nonce} to={row.to_address} "
                    f"amount_u={row.amount_u} broadcasts={row.broadcast_count}",
                )
            )
    for deposit in ChainDeposit.objects.exclude(review_reason="").filter(reviewed_at__isnull=True).order_by("id"):
        findings.append(
            StuckFinding(
                kind="chain_deposit",
                id=f"{deposit.tx_hash}:{deposit.log_index}",
                state="needs_review",
                age_s=int((now - deposit.seen_at).total_seconds()),
                limit_s=0,
                detail=f"user={deposit.user_id} amount_u={deposit.amount_u} {deposit.review_reason}",
            )
        )
    return findings
