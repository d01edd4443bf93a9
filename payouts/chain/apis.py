"""Player API of the chain app: `GET /v1/chain/deposit-address` (the player's own USDC deposit address)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, extend_schema_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import IsPlayer
from ops.schema import problems

from .config import CURRENCY
from .deposits import deposit_address_for
from .errors import ChainNotConfigured, ChainNotOffered


class DepositAddressApi(APIView):
    """The player's deposit address for USDC on chain (derived from the xpub on first use); players only.

    Where the rail is not configured the answer is 404 `chain/not-offered` (a feature not offered here,
    not a server failure).
    """

    permission_classes = [IsPlayer]

    @extend_schema_serializer(component_name="ChainDepositAddress")
    class OutputSerializer(serializers.Serializer):
        address = serializers.CharField()
        currency = serializers.CharField()
        chain_id = serializers.IntegerField()
        token_address = serializers.CharField()
        confirmations = serializers.IntegerField()

    @extend_schema(responses={200: OutputSerializer}, operation_id="chain_deposit_address_retrieve")
    @problems(ChainNotOffered)
    def get(self, request: Request) -> Response:
        from .config import chain_settings

        try:
            cfg = chain_settings()
            row = deposit_address_for(user=request.user)
        except ChainNotConfigured as exc:
            raise ChainNotOffered(f"On-chain USDC deposits are not offered here ({exc.detail}).") from exc
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
