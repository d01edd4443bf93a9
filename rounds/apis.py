"""Rounds API: the current round, one round, placing a bet, the player's bets and inclusion proofs.

Thin views: validate, call a service or selector, serialize. Errors are problem+json. Placing a bet
moves money, so it requires an `Idempotency-Key`: the bet keeps it inside its one database call
(`rounds.betting.bet_place_keyed`, `ops.idempotency.keyed_request`), with the contract and the schema of
`ops.idempotency.idempotent`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.core.cache import cache
from drf_spectacular.utils import extend_schema, extend_schema_field, extend_schema_serializer
from rest_framework import serializers, status
from rest_framework.authentication import BaseAuthentication
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import IsPlayer
from ledger.errors import InsufficientFunds, InvalidAmount
from ops.actors import signed_in_user
from ops.errors import problem_response
from ops.idempotency import idempotency_documented, keyed_existing_answer, keyed_request, replay_response
from ops.schema import PAGINATION_PARAMETERS, paginated, problems
from ops.ttl import TtlCache
from ops.validation import AmountField

from . import errors
from .betting import bet_place_keyed
from .models import Round
from .pools import pools_show
from .selectors import bet_proof, player_bets, round_current, round_current_code, round_public

# A bet's record is hashed as canonical JSON (RFC 8785), which allows no integer beyond 2**53 - 1.
MAX_STAKE_U = 2**53 - 1


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


# --- Cached round answers ------------------------------------------------------------------------
# An OPEN round's pools move with every bet. Its public answer is rendered from one SQL statement
# (`rounds.pools.round_with_pools`) and kept in this process for at most ROUND_OPEN_CACHE_S seconds
# (1 s by default; `ops.ttl`), counted from the start of the read that produced it: the pools a player
# sees may lag the bets by up to that bound (a player who has just bet may see the pools without the
# stake for up to a second), and so may the status: for at most the bound after a round locks, a process
# can still answer it OPEN. Nothing is decided on that answer: a bet checks the round's status in the
# database, in its own transaction, and is refused once the round has locked. Once a round is
# locked nothing in its public answer changes until it is settled or voided (the lock writes the status,
# the Merkle root and the final pools together), and a SETTLED or VOID round never changes again. So:
# - a LOCKED / SETTLED / VOID round's answer is cached under its code, primary key, status and
#   ROUND_OUTPUT_VERSION; the row is still read (one query), so a status change is seen at once and
#   can never be answered from the previous status's entry;
# - a finished round's answer is also kept under its code alone (`_final_key`): a finished round is
#   final, so `/v1/rounds/current` and `/v1/rounds/{code}` answer it without touching the database.
# The cache is Django's default cache (CACHES). Bump ROUND_OUTPUT_VERSION whenever the answer's shape
# or content changes (RoundOutputSerializer), so no process serves an entry of the previous shape.
ROUND_OUTPUT_VERSION = 1
LOCKED_OUTPUT_TTL_S = 24 * 3600
FINAL_OUTPUT_TTL_S = 24 * 3600


def _output_key(*, round_obj: Round) -> str:
    return f"rounds:output:v{ROUND_OUTPUT_VERSION}:{round_obj.code}:{round_obj.pk}:{round_obj.status}"


def _final_key(code: str) -> str:
    return f"rounds:final:v{ROUND_OUTPUT_VERSION}:{code}"


def round_output(round_obj: Round) -> dict[str, Any]:
    """The public answer for a round, from the cache once the round is locked (see above)."""
    if round_obj.status == Round.Status.OPEN:
        return dict(RoundOutputSerializer(round_obj).data)
    key = _output_key(round_obj=round_obj)
    data: dict[str, Any] | None = cache.get(key)
    if data is None:
        data = dict(RoundOutputSerializer(round_obj).data)
        finished = round_obj.is_finished
        cache.set(key, data, timeout=FINAL_OUTPUT_TTL_S if finished else LOCKED_OUTPUT_TTL_S)
        if finished:
            cache.set(_final_key(round_obj.code), data, timeout=FINAL_OUTPUT_TTL_S)
    return data


_open_answers: TtlCache[dict[str, Any]] = TtlCache(
    name="rounds_open", ttl_setting="ROUND_OPEN_CACHE_S", max_entries=256
)


def open_or_fresh_output(key: tuple[str, str], read: Callable[[], Round]) -> dict[str, Any]:
    """An OPEN round's answer rendered less than ROUND_OPEN_CACHE_S ago under `key`, else `read()`'s.

    The answer of a round read OPEN is kept under `key` (aged from before the read); any other status
    goes through `round_output`'s caching and is never kept here.
    """
    data = _open_answers.get(key)
    if data is not None:
        return data
    started = _open_answers.clock()
    round_obj = read()
    data = round_output(round_obj)
    if round_obj.status == Round.Status.OPEN:
        _open_answers.store(key, started, data)
    return data


def final_round_output(code: str) -> dict[str, Any] | None:
    """A finished round's cached answer by code alone, or None (not finished, or not cached yet)."""
    if not (len(code) == 8 and code.isascii() and code.isdigit()):  # a round code is YYYYMMDD
        return None
    return cache.get(_final_key(code))


class RoundCurrentApi(APIView):
    """The round of today's session (or the next one): status, times, pools by side, commit.

    Public, like every round's commit and reveal (the house manual curls it without credentials). The
    answer is the same for everyone, so no credentials are looked at (no token query).

    While the round is OPEN its answer may be up to one second old (`ROUND_OPEN_CACHE_S`): the pools may
    not yet show the last second's bets, and for up to a second after the round locks it may still read
    OPEN (a bet is then refused with `rounds/locked`: every bet checks the round in the database). A
    LOCKED, SETTLED or VOID round is answered as stored.
    """

    authentication_classes: list[type[BaseAuthentication]] = []
    permission_classes = [AllowAny]

    @extend_schema(responses={200: RoundOutputSerializer})
    @problems(errors.RoundNotFound)
    def get(self, request: Request) -> Response:
        code = round_current_code()
        data = final_round_output(code)
        return Response(data if data is not None else open_or_fresh_output(("current", code), round_current))


class RoundDetailApi(APIView):
    """One round; after settlement also its result, close, price evidence and reveal (public, like the current one).

    While the round is OPEN its answer may be up to one second old (`ROUND_OPEN_CACHE_S`), as the current
    round's: its pools and its status lag by at most that; a bet is checked in the database.
    """

    authentication_classes: list[type[BaseAuthentication]] = []
    permission_classes = [AllowAny]

    @extend_schema(responses={200: RoundOutputSerializer})
    @problems(errors.RoundNotFound)
    def get(self, request: Request, code: str) -> Response:
        data = final_round_output(code)
        if data is None:
            data = open_or_fresh_output(("code", code), lambda: round_public(code=code))
        return Response(data)


class BetPlaceApi(APIView):
    """Place a bet: the stake moves from the player's available balance into the round's pool (players only)."""

    permission_classes = [IsPlayer]

    @extend_schema_serializer(component_name="BetPlaceInput")
    class InputSerializer(serializers.Serializer):
        side = serializers.ChoiceField(choices=["UP", "DOWN"])
        stake_u = AmountField(max_u=MAX_STAKE_U)

    @extend_schema(request=InputSerializer, responses={201: BetOutputSerializer})
    @idempotency_documented
    @problems(
        errors.RoundNotFound,
        errors.InvalidBet,
        errors.BettingPaused,
        errors.RoundLocked,
        errors.StakeTooSmall,
        errors.AlreadyBet,
        InsufficientFunds,
        InvalidAmount,
    )
    def post(self, request: Request, code: str) -> Response:
        keyed = keyed_request(request, f"{request.method} {request.path}"[:200])
        serializer = self.InputSerializer(data=request.data)
        if not serializer.is_valid():
            # As under `@idempotent`: a key already used answers first; an invalid body is not stored under it.
            existing = keyed_existing_answer(user=request.user, keyed=keyed)
            if existing is not None:
                return existing
            raise serializers.ValidationError(serializer.errors)
        answer = bet_place_keyed(
            user=signed_in_user(request.user),
            code=code,
            keyed=keyed,
            render=lambda bet: BetOutputSerializer(bet).data,
            **serializer.validated_data,
        )
        if answer.replayed:
            return replay_response(status=answer.status, body=answer.body)
        if answer.status >= 400:
            return problem_response(answer.body)
        return Response(answer.body, status=status.HTTP_201_CREATED)


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
        # DRF's metaclass moves declared fields off the class, so this never shadows `Field.root` at run time.
        root = serializers.CharField()  # type: ignore[assignment]

        def get_proof(self, obj: Any) -> list[dict[str, str]]:
            return [{"sibling": sibling, "position": position} for sibling, position in obj.proof]

    @extend_schema(responses={200: OutputSerializer})
    @problems(errors.BetNotFound, errors.ProofNotReady, errors.ProofMismatch)
    def get(self, request: Request, bet_id: str) -> Response:
        return Response(self.OutputSerializer(bet_proof(user=request.user, bet_id=bet_id)).data)
