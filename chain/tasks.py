"""Beat jobs of the chain app; each takes no arguments, reloads everything and is safe to run twice."""

from __future__ import annotations

import logging
from dataclasses import asdict

from celery import shared_task

from ops.workers import worker_run

logger = logging.getLogger(__name__)


@shared_task(name="chain.tasks.track_chain_payouts")
def track_chain_payouts() -> dict:
    """Confirm, rebroadcast or send to review every open on-chain payout."""
    from .payouts import chain_payouts_track

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
    from .selectors import hot_wallet_balances

    with worker_run("chain_hot_wallet") as detail:
        balances = hot_wallet_balances()
        record_balances(token_u=balances.token_u, gas_wei=balances.gas_wei,
                        token_low=balances.token_low, gas_low=balances.gas_low)
        detail.update(asdict(balances))
        if balances.token_low or balances.gas_low:
            detail["result"] = "failed"
            logger.error("hot wallet %s low: token %s u, gas %s wei", balances.address, balances.token_u,
                         balances.gas_wei)
    return asdict(balances)
