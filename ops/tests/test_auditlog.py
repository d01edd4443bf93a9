"""django-auditlog records hand edits of configuration with the actor: session users in the admin,
token users in the API; money models are not registered (they keep the business audit)."""

from __future__ import annotations

from typing import Any

import pytest
from auditlog.models import LogEntry
from auditlog.registry import auditlog
from django.contrib.auth.models import Group
from django.test import Client
from django.urls import path
from rest_framework.response import Response
from rest_framework.views import APIView

from ops.models import Switch, Waiver

pytestmark = pytest.mark.django_db


class SwitchTouchApi(APIView):
    """Test-only: a token user changes a switch's reason."""

    def post(self, request: Any) -> Response:
        switch, _ = Switch.objects.get_or_create(name=Switch.Name.PAYOUT_FREEZE)
        switch.reason = "changed through the API"
        switch.save()
        return Response({"ok": True})


urlpatterns = [path("test/switch-touch", SwitchTouchApi.as_view())]


def test_the_hand_edited_models_are_registered_and_money_models_are_not() -> None:
    from django.contrib.auth import get_user_model

    from ledger.models import Account, Entry, Journal
    from payouts.models import Withdrawal

    for model in (get_user_model(), Group, Switch, Waiver):
        assert auditlog.contains(model), model
    for money_model in (Account, Journal, Entry, Withdrawal):
        assert not auditlog.contains(money_model), money_model


def test_an_admin_edit_of_a_user_records_the_operator_and_masks_the_password(make_staff: Any, player: Any) -> None:
    operator = make_staff(role="admin")
    operator.is_superuser = True
    operator.save()
    client = Client(REMOTE_ADDR="198.51.100.4")
    client.force_login(operator)
    response = client.post(
        f"/admin/accounts/user/{player.pk}/change/",
        {
            "email": player.email,
            "display_name": "Renamed by support",
            "is_active": "on",
            "date_joined_0": "2026-01-01",
            "date_joined_1": "00:00:00",
            "groups": [],
            "user_permissions": [],
        },
    )
    assert response.status_code in (200, 302), response.content[:500]
    entry = LogEntry.objects.get_for_object(player).filter(action=LogEntry.Action.UPDATE).latest("timestamp")
    assert entry.actor == operator and entry.remote_addr == "198.51.100.4"
    assert entry.changes_dict["display_name"] == ["", "Renamed by support"]
    player.set_password("another-long-password")
    player.save()
    masked = LogEntry.objects.get_for_object(player).latest("timestamp")
    assert "another" not in str(masked.changes) and "pbkdf2" not in str(masked.changes).lower()


def test_a_token_user_is_recorded_as_the_actor(make_staff: Any, api_client_for: Any, settings: Any) -> None:
    settings.ROOT_URLCONF = __name__
    operator = make_staff(role="admin")
    response = api_client_for(operator).post("/test/switch-touch")
    assert response.status_code == 200
    entry = LogEntry.objects.get_for_model(Switch).latest("timestamp")
    assert entry.actor == operator


def test_a_forged_forwarded_for_is_not_the_recorded_address(make_staff: Any) -> None:
    operator = make_staff(role="admin")
    client = Client(REMOTE_ADDR="198.51.100.4", HTTP_X_FORWARDED_FOR="10.9.9.9")
    client.force_login(operator)
    client.post("/admin/auth/group/add/", {"name": "auditors", "permissions": []})
    entry = LogEntry.objects.get_for_model(Group).latest("timestamp")
    assert entry.actor == operator and entry.remote_addr == "198.51.100.4"
