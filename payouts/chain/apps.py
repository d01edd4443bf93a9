"""USDC on chain: the on-chain payout rail and the on-chain deposit watcher (issue 15)."""

from django.apps import AppConfig


class ChainConfig(AppConfig):
    name = "payouts.chain"
    label = "chain"
    verbose_name = "USDC on chain"

    def ready(self) -> None:
        # Registers the payout rail, the deposits invariant, the stuck-job finder and the wallet metrics.
        from . import invariants, metrics, provider, selectors  # noqa: F401
        from .payouts import register_chain_decisions

        register_chain_decisions()
