"""Ledger URLs."""

from django.urls import path

from . import apis

urlpatterns = [
    path("v1/wallet", apis.WalletApi.as_view(), name="wallet"),
    path("v1/ledger/entries", apis.StatementApi.as_view(), name="ledger-entries"),
]
