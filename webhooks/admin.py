"""Operators' pages for deposits and webhook events: read-only, with a replay action.

No form here can add or change a deposit, an amount or an event: every field is read-only. The
replay action (permission `webhooks.replay_webhookevent`, held by finance) calls the same service as
`manage.py replay_psp_webhooks`, which is idempotent and writes an audit record.
"""

from __future__ import annotations

import json

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html

from ledger.admin_money import money_column
from ops.admin_base import ReadOnlyAdmin, ReadOnlyTabularInline, acting_operator
from ops.errors import ApplicationError

from .models import Deposit, WebhookEvent
from .processing import webhook_event_replay


class WebhookEventInline(ReadOnlyTabularInline):
    model = WebhookEvent
    fields = ("provider", "event_id", "event_type", "status", "reason", "attempts", "received_at")
    readonly_fields = fields
    show_change_link = True


@admin.register(Deposit)
class DepositAdmin(ReadOnlyAdmin):
    list_display = (
        "public_id",
        "provider",
        "user",
        "amount",
        "currency",
        "status",
        "psp_id",
        "created_at",
        "credited_at",
    )
    list_filter = ("status", "provider", "currency")
    search_fields = ("reference", "public_id", "psp_id", "psp_payment_reference", "user__email", "=flow_id")
    readonly_fields = (
        "public_id",
        "provider",
        "reference",
        "user",
        "amount",
        "currency",
        "status",
        "psp_id",
        "psp_payment_reference",
        "failure_reason",
        "journal",
        "refunded",
        "charged_back",
        "created_at",
        "credited_at",
        "updated_at",
        "flow_id",
    )
    exclude = ("psp_client_data",)
    inlines = (WebhookEventInline,)

    amount = staticmethod(money_column("amount_u", description="amount"))
    refunded = staticmethod(money_column("refunded_u"))
    charged_back = staticmethod(money_column("charged_back_u"))


@admin.register(WebhookEvent)
class WebhookEventAdmin(ReadOnlyAdmin):
    list_display = (
        "id",
        "provider",
        "event_id",
        "event_type",
        "status",
        "attempts",
        "short_reason",
        "received_at",
        "processed_at",
    )
    list_filter = ("status", "provider", "event_type")
    search_fields = ("event_id", "reference", "deposit__reference")
    readonly_fields = (
        "provider",
        "event_id",
        "event_type",
        "reference",
        "status",
        "reason",
        "attempts",
        "last_error",
        "deposit",
        "journal_reference",
        "received_at",
        "processed_at",
        "payload_hash",
        "pretty_payload",
        "headers",
    )
    exclude = ("payload",)
    actions = ("replay_events",)

    @admin.display(description="reason / error")
    def short_reason(self, event: WebhookEvent) -> str:
        text = event.last_error if event.status == WebhookEvent.Status.FAILED else event.reason
        return (text[:80] + "…") if len(text) > 80 else text

    @admin.display(description="payload")
    def pretty_payload(self, event: WebhookEvent) -> str:
        return format_html("<pre>{}</pre>", json.dumps(event.payload, indent=2, sort_keys=True))

    @admin.action(description="Replay selected events (idempotent)", permissions=["replay"])
    def replay_events(self, request: HttpRequest, queryset: QuerySet[WebhookEvent]) -> None:
        for event_id in queryset.order_by("id").values_list("id", flat=True):
            try:
                event = webhook_event_replay(
                    event_id=event_id, acting_user=acting_operator(request), reason="admin replay"
                )
            except ApplicationError as exc:
                self.message_user(request, f"Event {event_id}: {exc.detail}", messages.ERROR)
                continue
            except Exception as exc:  # noqa: BLE001 (shown to the operator, the event keeps its status)
                self.message_user(request, f"Event {event_id}: {type(exc).__name__}: {exc}", messages.ERROR)
                continue
            level = messages.WARNING if event.status == WebhookEvent.Status.FLAGGED else messages.SUCCESS
            self.message_user(request, f"Event {event_id}: {event.status}. {event.reason}", level)

    def has_replay_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("webhooks.replay_webhookevent")
