"""Withdrawal API: players request, list, read and cancel their own; operators approve, reject and
resolve the manual-review queue (seed 004's `/v1/payouts/manual-review` and `/v1/payouts/{id}/resolve`).

Views are thin: validate, call a service or selector, serialize. Errors are problem+json.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_serializer,
)
from rest_framework import serializers, status
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.permissions import BasePermission, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import IsPlayerToWrite
from ledger.currencies import CURRENCIES
from ledger.errors import InsufficientFunds, InvalidAmount, UnknownCurrency
from ops import approvals
from ops.actors import signed_in_user
from ops.errors import Forbidden
from ops.idempotency import idempotent
from ops.schema import paginated, problems
from ops.validation import AmountField, refuse_nul

from . import errors
from .chain import errors as chain_errors
from .models import Withdrawal
from .providers import provider_names
from .selectors import (
    manual_review_queue,
    withdrawal_get,
    withdrawal_list,
    withdrawal_pending_signoffs,
)
from .services import (
    RESOLVE_DECISIONS,
    withdrawal_approve,
    withdrawal_cancel,
    withdrawal_reject,
    withdrawal_request,
    withdrawal_resolve,
)


class IsOperator(BasePermission):
    """Active staff (support, finance, admin); what each may do is checked by the service."""

    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        return bool(user and user.is_authenticated and user.is_active and user.is_staff)


class CanViewWithdrawals(IsOperator):
    """Operators whose role may read withdrawals (support may list the queue)."""

    def has_permission(self, request: Request, view: Any) -> bool:
        return super().has_permission(request, view) and request.user.has_perm("payouts.view_withdrawal")


class WithdrawalOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    state = serializers.CharField()
    amount_u = serializers.IntegerField()
    currency = serializers.CharField()
    provider = serializers.CharField()
    destination = serializers.JSONField()
    psp_reference = serializers.CharField()
    tx_hash = serializers.SerializerMethodField(help_text="On-chain payouts: the transaction hash.")
    created_at = serializers.DateTimeField()
    state_changed_at = serializers.DateTimeField()

    def get_tx_hash(self, obj: Withdrawal) -> str | None:
        return obj.psp_reference or None if obj.provider == "chain" else None


class StaffWithdrawalOutputSerializer(WithdrawalOutputSerializer):
    user = serializers.EmailField(source="user.email")
    pending_signoffs = serializers.SerializerMethodField()

    def get_pending_signoffs(self, obj: Withdrawal) -> list[dict[str, Any]]:
        return [
            {"action": s["action"], "operator": s["operator"], "at": s["at"].isoformat()}
            for s in withdrawal_pending_signoffs(withdrawal=obj)
        ]


# What an operator's decision on a withdrawal can be refused with (payouts.services, ops.approvals).
DECISION_REFUSALS = (
    errors.WithdrawalNotFound,
    errors.InvalidTransition,
    errors.TransitionForbidden,
    errors.ReasonRequired,
    errors.ConcurrentAction,
    approvals.DecisionRefused,
    approvals.SecondOperatorRequired,
    approvals.OwnAccount,
    approvals.ReasonRequired,
    Forbidden,
)


def _staff_responses(description: str) -> dict[int, Any]:
    """200: the decision is done; 202: a first four-eyes sign-off was recorded, a second operator must act."""
    return {
        200: OpenApiResponse(StaffWithdrawalOutputSerializer, description=description),
        202: OpenApiResponse(
            StaffWithdrawalOutputSerializer,
            description=(
                "Above the four-eyes threshold: this operator's sign-off is recorded (see `pending_signoffs`) and "
                "the withdrawal stays where it was until a second operator does the same."
            ),
        ),
    }


def _staff_response(withdrawal: Withdrawal, from_state: str | None = None) -> Response:
    body = StaffWithdrawalOutputSerializer(withdrawal).data
    # 202: a first four-eyes sign-off was recorded; a second operator must complete the action.
    code = (
        status.HTTP_202_ACCEPTED if body["pending_signoffs"] and withdrawal.state == from_state else status.HTTP_200_OK
    )
    return Response(body, status=code)


class WithdrawalsApi(APIView):
    """`GET /v1/withdrawals`: the player's own withdrawals. `POST`: request one (Idempotency-Key required).

    One URL serves both methods, so this view holds two operations, each with its own serializers.
    Only players may request one (operators get 403 `accounts/not-a-player`).
    """

    permission_classes = [IsPlayerToWrite]

    @extend_schema_serializer(component_name="WithdrawalCreateInput")
    class InputSerializer(serializers.Serializer):
        amount_u = AmountField()
        currency = serializers.ChoiceField(choices=sorted(CURRENCIES))
        provider = serializers.CharField(max_length=30)
        # Required: an object, then checked by the rail's own declaration (`PayoutProvider.clean_destination`); a
        # missing or malformed one is `payouts/invalid-destination` (on chain `chain/invalid-address`), nothing held.
        destination = serializers.DictField(
            required=False,
            default=None,
            validators=[refuse_nul],
            help_text=(
                'Required. stripe: {"connected_account": "acct_..."}; adyen: {"transfer_instrument_id": "..."} or '
                '{"bank_account": {"holder_name": "...", "iban": "..."}}; chain: {"address": "0x<EIP-55>"}.'
            ),
        )

        def validate_provider(self, value: str) -> str:
            if value not in provider_names():
                raise serializers.ValidationError(f"Unknown provider; one of {', '.join(provider_names())}.")
            return value

    @extend_schema(
        parameters=[OpenApiParameter("limit", int), OpenApiParameter("offset", int)],
        responses={200: paginated(WithdrawalOutputSerializer, name="PaginatedWithdrawalList")},
        operation_id="v1_withdrawals_list",
    )
    def get(self, request: Request) -> Response:
        paginator = LimitOffsetPagination()
        page = paginator.paginate_queryset(withdrawal_list(user=request.user), request, view=self)
        return paginator.get_paginated_response(WithdrawalOutputSerializer(page, many=True).data)

    @extend_schema(request=InputSerializer, responses={201: WithdrawalOutputSerializer})
    @idempotent
    @problems(
        errors.UnknownProvider,
        errors.InvalidWithdrawal,
        errors.InvalidDestination,
        chain_errors.InvalidChainAddress,
        chain_errors.ChainCurrencyNotSupported,
        chain_errors.ChainNotConfigured,
        InsufficientFunds,
        UnknownCurrency,
        InvalidAmount,
    )
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        withdrawal = withdrawal_request(user=signed_in_user(request.user), **data.validated_data)
        return Response(WithdrawalOutputSerializer(withdrawal).data, status=status.HTTP_201_CREATED)


class WithdrawalDetailApi(APIView):
    """`GET /v1/withdrawals/{id}`: one of the player's own withdrawals (another player's: 404)."""

    permission_classes = [IsAuthenticated]

    @extend_schema(responses={200: WithdrawalOutputSerializer})
    @problems(errors.WithdrawalNotFound)
    def get(self, request: Request, withdrawal_id: int) -> Response:
        withdrawal = withdrawal_get(user=request.user, withdrawal_id=withdrawal_id)
        return Response(WithdrawalOutputSerializer(withdrawal).data)


class WithdrawalCancelApi(APIView):
    """`POST /v1/withdrawals/{id}/cancel`: the player cancels while still requested; funds are released.

    An Idempotency-Key is honoured when one is sent; without one a repeat is refused by the state machine (409).
    """

    permission_classes = [IsAuthenticated]

    @extend_schema(request=None, responses={200: WithdrawalOutputSerializer})
    @idempotent(required=False)
    @problems(*DECISION_REFUSALS)
    def post(self, request: Request, withdrawal_id: int) -> Response:
        withdrawal = withdrawal_cancel(withdrawal_id=withdrawal_id, acting_user=signed_in_user(request.user))
        return Response(WithdrawalOutputSerializer(withdrawal).data)


class WithdrawalApproveApi(APIView):
    """`POST /v1/withdrawals/{id}/approve` (finance/admin): approve; above the four-eyes threshold, 202 until
    a second operator approves too."""

    permission_classes = [IsOperator]

    @extend_schema_serializer(component_name="WithdrawalApproveInput")
    class InputSerializer(serializers.Serializer):
        reason = serializers.CharField(
            required=False,
            allow_blank=True,
            default="",
            max_length=2000,
            help_text="Why (kept in the audit log). Required from the second operator of a four-eyes approval "
            "(400 approvals/reason-required without it); the first may leave it out.",
        )

    @extend_schema(request=InputSerializer, responses=_staff_responses("Approved: the payout is on its way."))
    @idempotent(required=False)
    @problems(*DECISION_REFUSALS)
    def post(self, request: Request, withdrawal_id: int) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        withdrawal = withdrawal_approve(
            withdrawal_id=withdrawal_id,
            acting_user=signed_in_user(request.user),
            reason=data.validated_data["reason"],
        )
        return _staff_response(withdrawal, from_state=Withdrawal.State.REQUESTED)


class WithdrawalRejectApi(APIView):
    """`POST /v1/withdrawals/{id}/reject` (finance/admin) with a reason; the held funds are released."""

    permission_classes = [IsOperator]

    @extend_schema_serializer(component_name="WithdrawalRejectInput")
    class InputSerializer(serializers.Serializer):
        reason = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)

    @extend_schema(request=InputSerializer, responses={200: StaffWithdrawalOutputSerializer})
    @idempotent(required=False)
    @problems(*DECISION_REFUSALS)
    def post(self, request: Request, withdrawal_id: int) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        withdrawal = withdrawal_reject(
            withdrawal_id=withdrawal_id,
            acting_user=signed_in_user(request.user),
            reason=data.validated_data["reason"],
        )
        return _staff_response(withdrawal)


class ManualReviewListApi(APIView):
    """`GET /v1/payouts/manual-review?limit=50&offset=0`: failed payouts waiting for a decision (staff)."""

    permission_classes = [CanViewWithdrawals]

    @extend_schema(
        parameters=[OpenApiParameter("limit", int), OpenApiParameter("offset", int)],
        responses={200: paginated(StaffWithdrawalOutputSerializer, name="PaginatedStaffWithdrawalList")},
    )
    def get(self, request: Request) -> Response:
        paginator = LimitOffsetPagination()
        page = paginator.paginate_queryset(manual_review_queue(), request, view=self)
        return paginator.get_paginated_response(StaffWithdrawalOutputSerializer(page, many=True).data)


class PayoutResolveApi(APIView):
    """`POST /v1/payouts/{id}/resolve` `{"decision": "confirm_sent"|"refund_failed"|"retry", "reason": "..."}`."""

    permission_classes = [IsOperator]

    @extend_schema_serializer(component_name="PayoutResolveInput")
    class InputSerializer(serializers.Serializer):
        decision = serializers.ChoiceField(choices=RESOLVE_DECISIONS)
        reason = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)

    @extend_schema(request=InputSerializer, responses=_staff_responses("Resolved as decided."))
    @idempotent(required=False)
    @problems(*DECISION_REFUSALS, errors.PspAnswerPending, errors.InvalidWithdrawal)
    def post(self, request: Request, withdrawal_id: int) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        withdrawal = withdrawal_resolve(
            withdrawal_id=withdrawal_id, acting_user=signed_in_user(request.user), **data.validated_data
        )
        # A payout still payout_submitted (PSP asked) may be resolved too: 202 while it awaits a second operator.
        undecided = (
            withdrawal.state
            if withdrawal.state in (Withdrawal.State.PAYOUT_FAILED, Withdrawal.State.PAYOUT_SUBMITTED)
            else Withdrawal.State.PAYOUT_FAILED
        )
        return _staff_response(withdrawal, from_state=undecided)
