"""A test-only money-moving view that uses the Idempotency-Key mechanism."""

from django.urls import include, path
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import User
from ledger.services import house_account, transfer, user_account
from ops.errors import ServiceUnavailable
from ops.idempotency import idempotent


class PayHouseApi(APIView):
    class InputSerializer(serializers.Serializer):
        amount_u = serializers.IntegerField()
        # The serializer metaclass moves declared fields off the class, so `Field.fail()` is not shadowed.
        fail = serializers.BooleanField(default=False)  # type: ignore[assignment]

    @idempotent
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        user = request.user
        assert isinstance(user, User)  # IsAuthenticated, the default permission, let only a user in
        journal = transfer(
            source=user_account(user=user, currency="USDC"),
            destination=house_account(currency="USDC"),
            amount_u=data.validated_data["amount_u"],
            type="fee",
            reference=f"pay-house:{request.headers['Idempotency-Key']}:{user.pk}",
            actor=user,
        )
        if data.validated_data["fail"]:
            raise ServiceUnavailable("the downstream is down")
        return Response({"journal": journal.reference}, status=201)


class OutsideCallApi(APIView):
    """Reports whether a transaction was open while it ran (as a PSP call would see it)."""

    @idempotent(atomic=False)
    def post(self, request: Request) -> Response:
        from django.db import connection

        return Response({"in_transaction": connection.in_atomic_block}, status=201)


urlpatterns = [
    path("test/pay-house", PayHouseApi.as_view()),
    path("test/outside-call", OutsideCallApi.as_view()),
    path("", include("config.urls")),
]
