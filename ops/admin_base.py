"""What every app's admin shares: the read-only base, and a service's refusal shown as one message.

Nobody adds, changes or deletes rows of a read-only admin: corrections are new records written by
services (a reversing journal, a replay, a decision), never an edit in a form. Admin actions and custom
views declared on a subclass stay available; they call services, which check permissions themselves.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest

from .actors import signed_in_user
from .errors import ApplicationError

if TYPE_CHECKING:
    from accounts.models import User


class ReadOnlyPermissions:
    """No add, change or delete permission, whoever asks (view permission is untouched)."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ReadOnlyAdmin(ReadOnlyPermissions, admin.ModelAdmin):
    """A model admin that shows everything and changes nothing."""


class ReadOnlyTabularInline(ReadOnlyPermissions, admin.TabularInline):
    """An inline table that shows the related rows and changes nothing."""

    extra = 0
    can_delete = False


def acting_operator(request: HttpRequest) -> User:
    """Return the signed-in operator of an admin page, the actor its services record.

    `admin_site.admin_view` lets only active staff in; anything else here is refused, never passed on.
    """
    try:
        return signed_in_user(request.user)
    except ApplicationError as exc:
        raise PermissionDenied(exc.detail) from exc


@contextmanager
def refusal_as_message(request: HttpRequest, label: str) -> Iterator[None]:
    """Show a service's refusal as one error message, `<label> refused: <detail>`, instead of a 500.

    Put the success message inside the block: it is skipped when the service refuses.
    """
    try:
        yield
    except ApplicationError as exc:
        messages.error(request, f"{label} refused: {exc.detail}")
