"""Player API of the chain app: `GET /v1/chain/deposit-address` (the player's own USDC deposit address)."""

from __future__ import annotations

from rest_framework import serializers
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from .config import CURRENCY
from .deposits import deposit_address_for


class DepositAddressApi(APIView):
    """The player's deposit address for USDC on chain (derived from the xpub on first use)."""

    permission_classes = [IsAuthenticated]

    class OutputSerializer(serializers.Serializer):
        address = serializers.CharField()
        currency = serializers.CharField()
        chain_id = serializers.IntegerField()
        token_address = serializers.CharField()
        confirmations = serializers.IntegerField()

    def get(self, request: Request) -> Response:
        from .config import chain_settings

        cfg = chain_settings()
        row = deposit_address_for(user=request.user)
        return Response(
            self.OutputSerializer(
                {
                    "address": row.address,
                    "currency": CURRENCY,
                    "chain_id": cfg.chain_id,
                    "token_address": cfg.token_address,
                    "confirmations": cfg.confirmations,
                }
            ).data
        )
