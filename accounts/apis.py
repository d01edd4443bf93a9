"""Player authentication API: token login and logout."""

from __future__ import annotations

from typing import cast

from drf_spectacular.utils import extend_schema, extend_schema_serializer
from knox.models import AuthToken
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from ops.schema import problems

from .authentication import ExpiringTokenAuthentication, tokens_forget
from .services import InvalidCredentials, LoginLockedOut, token_login


class TokenLoginApi(APIView):
    """Exchange email and password for an expiring API token."""

    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema_serializer(component_name="TokenLoginInput")
    class InputSerializer(serializers.Serializer):
        email = serializers.EmailField()
        password = serializers.CharField(max_length=200)

    @extend_schema_serializer(component_name="TokenLoginOutput")
    class OutputSerializer(serializers.Serializer):
        token = serializers.CharField()
        expiry = serializers.DateTimeField(allow_null=True)
        user_id = serializers.UUIDField()
        email = serializers.EmailField()

    @extend_schema(request=InputSerializer, responses={200: OutputSerializer})
    @problems(InvalidCredentials, LoginLockedOut)
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        token, expiry, user = token_login(request=request, **data.validated_data)
        body = {"token": token, "expiry": expiry, "user_id": user.public_id, "email": user.email}
        return Response(self.OutputSerializer(body).data, status=status.HTTP_200_OK)


class TokenLogoutApi(APIView):
    """Revoke the token used for this request."""

    authentication_classes = [ExpiringTokenAuthentication]
    permission_classes = [IsAuthenticated]

    @extend_schema(request=None, responses={204: None})
    def post(self, request: Request) -> Response:
        token = cast(AuthToken, request.auth)
        token.delete()
        tokens_forget(digest=token.digest)  # refused at once here, within AUTH_TOKEN_CACHE_S elsewhere
        return Response(status=status.HTTP_204_NO_CONTENT)
