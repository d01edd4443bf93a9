"""The daily Up/Down round on the NASDAQ close."""

from django.apps import AppConfig


class RoundsConfig(AppConfig):
    name = "rounds"
    verbose_name = "Rounds"

    def ready(self) -> None:
        # Registers the round_pools_equal_stakes invariant, the betting_*/round_* metric families and the
        # wallet's in_open_bets_u (the player's stakes in unsettled rounds), the stuck-rounds source and the
        # deploy check that no demo clock is left outside development.
        from . import checks, invariants, metrics, selectors  # noqa: F401
        from .overrides import register_round_decisions

        register_round_decisions()
