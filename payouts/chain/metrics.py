"""Hot-wallet metrics: `chain_hot_wallet_token_balance_u`, `chain_hot_wallet_gas_balance_wei`, and counts.

The balances are read from the node by the `check_hot_wallet` task (every 5 minutes) and kept in
gauges; the on-call runbook alerts when they fall below CHAIN_LOW_TOKEN_BALANCE_U / _GAS_BALANCE_WEI.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import Gauge
from prometheus_client.core import GaugeMetricFamily, Metric

from ops.metrics import register_db_metrics

HOT_WALLET_TOKEN = Gauge("chain_hot_wallet_token_balance_u", "Hot wallet USDC balance on chain, in micro-USDC.")
HOT_WALLET_GAS = Gauge("chain_hot_wallet_gas_balance_wei", "Hot wallet native (gas) balance on chain, in wei.")
HOT_WALLET_LOW = Gauge("chain_hot_wallet_low", "1 when a hot wallet balance is below its alert level.", ["asset"])


def record_balances(*, token_u: int, gas_wei: int, token_low: bool, gas_low: bool) -> None:
    HOT_WALLET_TOKEN.set(token_u)
    HOT_WALLET_GAS.set(gas_wei)
    HOT_WALLET_LOW.labels(asset="token").set(1 if token_low else 0)
    HOT_WALLET_LOW.labels(asset="gas").set(1 if gas_low else 0)


@register_db_metrics
def chain_metrics() -> Iterable[Metric]:
    """`chain_unconfirmed_transactions` and `chain_items_needing_review` from the database."""
    from .models import ChainDeposit, ChainTransfer

    open_txs = GaugeMetricFamily("chain_unconfirmed_transactions", "On-chain payouts signed but not confirmed.")
    open_txs.add_metric([], ChainTransfer.objects.filter(status__in=ChainTransfer.OPEN).count())
    yield open_txs
    review = GaugeMetricFamily("chain_items_needing_review", "On-chain transfers and deposits flagged for review.")
    review.add_metric(
        [],
        ChainTransfer.objects.exclude(review_reason="").filter(reviewed_at__isnull=True).count()
        + ChainDeposit.objects.exclude(review_reason="").filter(reviewed_at__isnull=True).count(),
    )
    yield review
