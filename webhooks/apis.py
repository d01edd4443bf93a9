"""Player deposit API: start a deposit (`POST /v1/deposits`), list and read one's own deposits.

Starting a deposit moves no money: it creates a pending deposit and the PSP's payment object, and
returns what the client needs to pay. The credit comes only with the provider's signed webhook.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema, extend_schema_field, extend_schema_serializer
from rest_framework import serializers, status
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import IsPlayerToWrite
from ops.actors import require_player
from ops.errors import NotFound
from ops.idempotency import idempotent
from ops.schema import PAGINATION_PARAMETERS, paginated, problems
from ops.validation import AmountField

from .deposits import deposit_start
from .errors import (
    DepositProviderFailed,
    InvalidAmount,
    UnknownCurrency,
    UnsupportedCurrency,
    UnsupportedProvider,
)
from .models import Deposit
from .selectors import deposit_get, deposit_list


@extend_schema_serializer(component_name="Deposit")
class DepositOutputSerializer(serializers.Serializer):
    id = serializers.UUIDField(source="public_id")
    reference = serializers.CharField()
    provider = serializers.CharField()
    amount_u = serializers.IntegerField()
    currency = serializers.CharField()
    status = serializers.CharField()
    psp_id = serializers.CharField()
    client_secret = serializers.SerializerMethodField()
    session_id = serializers.SerializerMethodField()
    session_data = serializers.SerializerMethodField()
    failure_reason = serializers.CharField()
    created_at = serializers.DateTimeField()
    credited_at = serializers.DateTimeField(allow_null=True)  # null until credited

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_client_secret(self, deposit: Deposit) -> str | None:
        return (deposit.psp_client_data or {}).get("client_secret")

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_session_id(self, deposit: Deposit) -> str | None:
        return (deposit.psp_client_data or {}).get("session_id")

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_session_data(self, deposit: Deposit) -> str | None:
        return (deposit.psp_client_data or {}).get("session_data")


class DepositsApi(APIView):
    """`GET`: the player's own deposits. `POST` (Idempotency-Key): start a deposit with a PSP (players only)."""

    permission_classes = [IsPlayerToWrite]

    @extend_schema_serializer(component_name="DepositStartInput")
    class InputSerializer(serializers.Serializer):
        provider = serializers.ChoiceField(choices=["stripe", "adyen"])
        amount_u = AmountField()
        currency = serializers.CharField(max_length=10)
        return_url = serializers.URLField(required=False, allow_blank=True, default="")

    OutputSerializer = DepositOutputSerializer

    @extend_schema(
        responses={200: paginated(DepositOutputSerializer, name="PaginatedDepositList")},
        parameters=PAGINATION_PARAMETERS,
        operation_id="v1_deposits_list",
    )
    def get(self, request: Request) -> Response:
        paginator = LimitOffsetPagination()
        page = paginator.paginate_queryset(deposit_list(user=request.user), request, view=self)
        return paginator.get_paginated_response(self.OutputSerializer(page, many=True).data)

    @extend_schema(request=InputSerializer, responses={201: DepositOutputSerializer})
    @idempotent(atomic=False)  # the PSP is called with no transaction open; the service commits its own rows
    @problems(UnsupportedProvider, UnsupportedCurrency, DepositProviderFailed, UnknownCurrency, InvalidAmount)
    def post(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        deposit = deposit_start(user=require_player(request.user), **serializer.validated_data)
        return Response(self.OutputSerializer(deposit).data, status=status.HTTP_201_CREATED)


class DepositDetailApi(APIView):
    """One of the player's own deposits."""

    @extend_schema(responses={200: DepositOutputSerializer})
    @problems(NotFound)
    def get(self, request: Request, deposit_id: Any) -> Response:
        return Response(DepositOutputSerializer(deposit_get(user=request.user, public_id=deposit_id)).data)
