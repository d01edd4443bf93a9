"""URLs of the rounds app (mounted at the site root by config/urls.py)."""

from django.urls import path

from . import apis

urlpatterns = [
    path("v1/rounds/current", apis.RoundCurrentApi.as_view(), name="rounds-current"),
    # The house manual's `curl http://localhost:8000/rounds/current`.
    path("rounds/current", apis.RoundCurrentApi.as_view(), name="rounds-current-manual"),
    path("v1/rounds/<str:code>", apis.RoundDetailApi.as_view(), name="rounds-detail"),
    path("v1/rounds/<str:code>/bets", apis.BetPlaceApi.as_view(), name="rounds-bet-place"),
    path("v1/bets", apis.BetListApi.as_view(), name="bets-list"),
    path("v1/bets/<str:bet_id>/proof", apis.BetProofApi.as_view(), name="bets-proof"),
]
