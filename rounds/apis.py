"""Rounds API: the current round, one round, placing a bet, the player's bets and inclusion proofs.

Thin views: validate, call a service or selector, serialize. Errors are problem+json. Placing a bet
moves money, so it requires an `Idempotency-Key` (`ops.idempotency.idempotent`).
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field, extend_schema_serializer
from rest_framework import serializers, status
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import IsPlayer
from ops.idempotency import idempotent
from ops.schema import PAGINATION_PARAMETERS, paginated

from .betting import bet_place
from .models import Bet, Round
from .pools import pools_show
from .selectors import bet_proof, player_bets, round_current, round_get

# A bet's record is hashed as canonical JSON (RFC 8785), which allows no integer beyond 2**53 - 1.
MAX_STAKE_U = 2**53 - 1


class StrictIntegerField(serializers.IntegerField):
    """An integer that must arrive as a JSON integer (no strings, floats or booleans)."""

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


@extend_schema_serializer(component_name="Round")
class RoundOutputSerializer(serializers.Serializer):
    """A round as players see it; the settlement part appears once it is finished."""

    @extend_schema_serializer(component_name="RoundPools")
    class PoolsSerializer(serializers.Serializer):
        up_u = serializers.IntegerField(source="up_pool_u")
        down_u = serializers.IntegerField(source="down_pool_u")
        total_u = serializers.IntegerField(source="total_pool_u")
        up_bets = serializers.IntegerField()
        down_bets = serializers.IntegerField()

    @extend_schema_serializer(component_name="RoundSettlement")
    class SettlementSerializer(serializers.Serializer):
        result = serializers.CharField()
        void_reason = serializers.CharField(allow_null=True)
        close = serializers.CharField(source="close_price", allow_null=True)
        price_evidence = serializers.JSONField()
        fee_u = serializers.IntegerField()
        breakage_u = serializers.IntegerField()
        payouts_total_u = serializers.IntegerField()
        winners = serializers.IntegerField()
        settled_at = serializers.DateTimeField()
        reveal = serializers.JSONField()

    code = serializers.CharField()
    instrument = serializers.CharField()
    currency = serializers.CharField()
    status = serializers.CharField()
    open_at = serializers.DateTimeField()
    lock_at = serializers.DateTimeField()
    close_at = serializers.DateTimeField()
    settle_after = serializers.DateTimeField()
    reference_close = serializers.CharField()
    reference_session = serializers.DateField()
    fee_bps = serializers.IntegerField()
    min_stake_u = serializers.IntegerField()
    commit = serializers.CharField()
    previous_commit = serializers.CharField(allow_null=True)
    merkle_root = serializers.SerializerMethodField()
    pools = serializers.SerializerMethodField()
    settlement = serializers.SerializerMethodField()

    def get_merkle_root(self, obj: Round) -> str | None:
        return obj.merkle_root or None

    @extend_schema_field(PoolsSerializer)
    def get_pools(self, obj: Round) -> dict[str, Any]:
        return dict(self.PoolsSerializer(pools_show(round_obj=obj)).data)  # from the bets while OPEN

    @extend_schema_field(SettlementSerializer(allow_null=True))
    def get_settlement(self, obj: Round) -> dict[str, Any] | None:
        if not obj.is_finished:
            return None
        data = dict(self.SettlementSerializer(obj).data)
        data["void_reason"] = obj.void_reason or None
        data["close"] = obj.close_price or None
        return data


@extend_schema_serializer(component_name="Bet")
class BetOutputSerializer(serializers.Serializer):
    bet_id = serializers.UUIDField()
    round = serializers.CharField(source="round.code")
    round_status = serializers.CharField(source="round.status")
    side = serializers.CharField()
    stake_u = serializers.IntegerField()
    currency = serializers.CharField(source="round.currency")
    placed_at = serializers.DateTimeField()
    payout_u = serializers.IntegerField(allow_null=True)


class RoundCurrentApi(APIView):
    """The round of today's session (or the next one): status, times, pools by side, commit.

    Public, like every round's commit and reveal (the house manual curls it without credentials).
    """

    permission_classes = [AllowAny]

    @extend_schema(responses={200: RoundOutputSerializer})
    def get(self, request: Request) -> Response:
        return Response(RoundOutputSerializer(round_current()).data)


class RoundDetailApi(APIView):
    """One round; after settlement also its result, close, price evidence and reveal (public)."""

    permission_classes = [AllowAny]

    @extend_schema(responses={200: RoundOutputSerializer})
    def get(self, request: Request, code: str) -> Response:
        return Response(RoundOutputSerializer(round_get(code=code)).data)


class BetPlaceApi(APIView):
    """Place a bet: the stake moves from the player's available balance into the round's pool (players only)."""

    permission_classes = [IsPlayer]

    @extend_schema_serializer(component_name="BetPlaceInput")
    class InputSerializer(serializers.Serializer):
        side = serializers.ChoiceField(choices=["UP", "DOWN"])
        stake_u = StrictIntegerField(min_value=1, max_value=MAX_STAKE_U)

    @extend_schema(
        request=InputSerializer,
        responses={201: BetOutputSerializer},
        parameters=[OpenApiParameter("Idempotency-Key", str, OpenApiParameter.HEADER, required=True)],
    )
    @idempotent
    def post(self, request: Request, code: str) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        bet = bet_place(user=request.user, code=code, **serializer.validated_data)
        bet = Bet.objects.select_related("round").get(pk=bet.pk)
        return Response(BetOutputSerializer(bet).data, status=status.HTTP_201_CREATED)


class BetListApi(APIView):
    """The player's own bets with their payouts, newest first (limit/offset)."""

    @extend_schema(
        responses={200: paginated(BetOutputSerializer, name="PaginatedBetList")},
        parameters=PAGINATION_PARAMETERS,
        operation_id="v1_bets_list",
    )
    def get(self, request: Request) -> Response:
        paginator = LimitOffsetPagination()
        page = paginator.paginate_queryset(player_bets(user=request.user), request, view=self)
        return paginator.get_paginated_response(BetOutputSerializer(page, many=True).data)


class BetProofApi(APIView):
    """The Merkle inclusion proof of one of the player's own bets, once the round is locked."""

    @extend_schema_serializer(component_name="BetProof")
    class OutputSerializer(serializers.Serializer):
        bet = serializers.JSONField(source="record")
        leaf = serializers.CharField()
        proof = serializers.SerializerMethodField()
        root = serializers.CharField()

        def get_proof(self, obj: Any) -> list[dict[str, str]]:
            return [{"sibling": sibling, "position": position} for sibling, position in obj.proof]

    @extend_schema(responses={200: OutputSerializer})
    def get(self, request: Request, bet_id: str) -> Response:
        return Response(self.OutputSerializer(bet_proof(user=request.user, bet_id=bet_id)).data)
