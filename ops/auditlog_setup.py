"""django-auditlog: the change history of what operators edit by hand in the admin.

Registered here: users (with their role groups and permissions; the password hash masked), roles
(auth groups), switches, waivers and django-axes lockout records (deleting one in the admin is an
unlock). Money models are not registered: they change only through services that write the
business audit (`ops.audit`).

The actor is the session user (the admin) or the token user (the API): auditlog's middleware sees
only the session user, because DRF authenticates tokens inside the view, so a LogEntry without an
actor takes the request's user as DRF left it. The client address comes from `client_ip` (only
trusted proxies' X-Forwarded-For), not from a header a client can forge.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

from auditlog.middleware import AuditlogMiddleware as BaseAuditlogMiddleware
from django.contrib.auth import get_user_model
from django.db.models.signals import pre_save
from django.http import HttpRequest, HttpResponse

from .front_door import client_ip

_current_request: ContextVar[HttpRequest | None] = ContextVar("auditlog_request", default=None)


class AuditlogMiddleware(BaseAuditlogMiddleware):
    """auditlog's middleware, with the trusted client address and the request kept for token users."""

    @staticmethod
    def _get_remote_addr(request: HttpRequest) -> str:
        return client_ip(request)

    def __call__(self, request: HttpRequest) -> HttpResponse:
        token = _current_request.set(request)
        try:
            return super().__call__(request)
        finally:
            _current_request.reset(token)


def _actor_from_request(sender: Any, instance: Any, **kwargs: Any) -> None:
    """Give a LogEntry written during an API request the user DRF authenticated (token users)."""
    request = _current_request.get()
    if request is None or instance.actor_id is not None:
        return
    user = getattr(request, "user", None)
    if isinstance(user, get_user_model()) and user.is_authenticated:
        instance.actor = user
        instance.actor_email = getattr(user, "email", None)


def register_models() -> None:
    """Register the hand-edited models with auditlog (called once from OpsConfig.ready)."""
    from auditlog.models import LogEntry
    from auditlog.registry import auditlog
    from axes.models import AccessAttempt
    from django.contrib.auth.models import Group

    from .models import Switch, Waiver

    auditlog.register(
        get_user_model(),
        mask_fields=["password"],
        exclude_fields=["last_login"],
        m2m_fields={"groups", "user_permissions"},
    )
    auditlog.register(Group, m2m_fields={"permissions"})
    auditlog.register(Switch)
    auditlog.register(Waiver)
    auditlog.register(AccessAttempt, include_fields=["username", "ip_address", "failures_since_start"])
    pre_save.connect(_actor_from_request, sender=LogEntry, dispatch_uid="ops.auditlog_actor_from_request")
