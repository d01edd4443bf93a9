"""API permissions that keep staff and players apart: operators are never players."""

from __future__ import annotations

from typing import Any

from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.request import Request

from ops.actors import require_player
from ops.errors import NotAPlayer


class IsPlayer(BasePermission):
    """An authenticated player; an operator's token gets 403 `accounts/not-a-player` problem+json."""

    problems = (NotAPlayer,)  # for the schema (ops.schema): what this check answers instead of `forbidden`

    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        if not (user and user.is_authenticated):
            return False
        require_player(user)  # raises NotAPlayer (403) for staff and inactive accounts
        return True


class IsPlayerToWrite(IsPlayer):
    """Anyone authenticated may read; only a player may write (request a withdrawal, start a deposit)."""

    reads_open_to_signed_in = True  # for the schema (ops.schema): a read is never refused here

    def has_permission(self, request: Request, view: Any) -> bool:
        if request.method in SAFE_METHODS:
            return bool(request.user and request.user.is_authenticated)
        return super().has_permission(request, view)
