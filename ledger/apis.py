"""Player ledger API: the wallet and the player's own statement."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_serializer, inline_serializer
from rest_framework import serializers
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from ops.schema import paginated, problems

from .currencies import get_currency
from .errors import UnknownCurrency
from .selectors import user_statement, user_wallet


class WalletApi(APIView):
    """Balances per currency: available, held (withdrawals in flight), in open bets.

    One SQL statement (`user_wallet`) while the caller's token is remembered by this process (for
    `AUTH_TOKEN_CACHE_S`, 1 s: `accounts.authentication`); a token not seen in that time adds its own
    query (the token with its user, joined).
    """

    @extend_schema_serializer(component_name="WalletBalance")
    class OutputSerializer(serializers.Serializer):
        currency = serializers.CharField()
        exponent = serializers.IntegerField()
        available_u = serializers.IntegerField()
        held_u = serializers.IntegerField()
        in_open_bets_u = serializers.IntegerField()

    @extend_schema(responses={200: inline_serializer("Wallet", {"balances": OutputSerializer(many=True)})})
    def get(self, request: Request) -> Response:
        rows = user_wallet(user=request.user)
        return Response({"balances": self.OutputSerializer(rows, many=True).data})


class StatementApi(APIView):
    """The player's own ledger entries, newest first, paginated (limit/offset)."""

    @extend_schema_serializer(component_name="StatementEntry")
    class OutputSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        ts = serializers.DateTimeField(source="created_at")
        currency = serializers.CharField()
        amount_u = serializers.IntegerField()
        account = serializers.CharField(source="account.kind")
        ref_type = serializers.CharField(source="journal.type")
        ref_id = serializers.CharField(source="journal.reference")

    @extend_schema(
        parameters=[OpenApiParameter("currency", str), OpenApiParameter("limit", int), OpenApiParameter("offset", int)],
        responses={200: paginated(OutputSerializer, name="PaginatedStatementEntryList")},
    )
    @problems(UnknownCurrency)
    def get(self, request: Request) -> Response:
        currency = request.query_params.get("currency") or None
        if currency:
            get_currency(currency)
        paginator = LimitOffsetPagination()
        page = paginator.paginate_queryset(user_statement(user=request.user, currency=currency), request, view=self)
        return paginator.get_paginated_response(self.OutputSerializer(page, many=True).data)
