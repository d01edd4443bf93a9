"""Beat jobs of the chain app; each takes no arguments, reloads everything and is safe to run twice."""

from __future__ import annotations

import logging
from dataclasses import asdict

from celery import shared_task

from ops.workers import worker_run

logger = logging.getLogger(__name__)


def _configured_or_idle(has_work: bool) -> bool:
    """Return False (skip quietly) only when the rail is not configured and nothing waits on it.

    Unconfigured with work waiting returns True: the run goes ahead and fails, recorded as a failed run.
    """
    from .config import chain_settings
    from .errors import ChainNotConfigured

    try:
        chain_settings()
    except ChainNotConfigured:
        return has_work
    return True


@shared_task(name="chain.tasks.track_chain_payouts")
def track_chain_payouts() -> dict:
    """Confirm, rebroadcast or send to review every open on-chain payout."""
    from .models import ChainTransfer
    from .payouts import chain_payouts_track

    if not _configured_or_idle(ChainTransfer.objects.filter(status__in=ChainTransfer.OPEN).exists()):
        return {"skipped": "on-chain rail not configured"}
    with worker_run("chain_payouts") as detail:
        report = asdict(chain_payouts_track())
        detail.update(report)
        if report["reverted"] or report["flagged"]:
            detail["result"] = "failed"
    return report


@shared_task(name="chain.tasks.scan_chain_deposits")
def scan_chain_deposits() -> dict:
    """Read new Transfer logs to deposit addresses and credit the confirmed ones once."""
    from .deposits import chain_deposits_scan
    from .models import DepositAddress

    if not _configured_or_idle(DepositAddress.objects.exists()):
        return {"skipped": "on-chain rail not configured"}
    with worker_run("chain_deposits") as detail:
        report = asdict(chain_deposits_scan())
        detail.update(report)
        if report["flagged"]:
            detail["result"] = "failed"
    return report


@shared_task(name="chain.tasks.check_hot_wallet")
def check_hot_wallet() -> dict:
    """Publish the hot wallet's balances as metrics; log an error when one is below its alert level."""
    from .metrics import record_balances
    from .models import HotWallet
    from .selectors import hot_wallet_balances

    if not _configured_or_idle(HotWallet.objects.exists()):
        return {"skipped": "on-chain rail not configured"}
    with worker_run("chain_hot_wallet") as detail:
        balances = hot_wallet_balances()
        record_balances(
            token_u=balances.token_u, gas_wei=balances.gas_wei, token_low=balances.token_low, gas_low=balances.gas_low
        )
        detail.update(asdict(balances))
        if balances.token_low or balances.gas_low:
            detail["result"] = "failed"
            logger.error(
                "hot wallet %s low: token %s u, gas %s wei", balances.address, balances.token_u, balances.gas_wei
            )
    return asdict(balances)
