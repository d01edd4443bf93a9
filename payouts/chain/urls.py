from django.urls import path

from . import apis

urlpatterns = [
    path("v1/chain/deposit-address", apis.DepositAddressApi.as_view(), name="chain-deposit-address"),
]
