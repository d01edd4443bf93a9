"""Operations in the admin: the audit log (read-only), switches, waivers, worker runs."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.http import HttpRequest

from ledger.admin import ReadOnlyAdmin

from .models import AuditRecord, IdempotencyKey, Switch, Waiver, WorkerRun
from .switches import switch_set


@admin.register(AuditRecord)
class AuditRecordAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "actor_label", "action", "object_type", "object_id", "from_state", "to_state", "reason"]
    list_filter = ["action", "object_type"]
    search_fields = ["actor_label", "object_id", "reason", "correlation_id"]
    date_hierarchy = "created_at"


@admin.register(WorkerRun)
class WorkerRunAdmin(ReadOnlyAdmin):
    list_display = ["finished_at", "worker", "result", "detail"]
    list_filter = ["worker", "result"]


@admin.register(IdempotencyKey)
class IdempotencyKeyAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "user", "key", "scope", "state", "response_status"]
    list_filter = ["state"]
    search_fields = ["key", "user__email"]


class SwitchForm(forms.ModelForm):
    reason = forms.CharField(widget=forms.Textarea, required=True, help_text="Recorded in the audit log.")

    class Meta:
        model = Switch
        fields = ["name", "on", "reason"]


@admin.register(Switch)
class SwitchAdmin(admin.ModelAdmin):
    """Switches change only through `switch_set`, which records who, when and why."""

    form = SwitchForm
    list_display = ["name", "on", "reason", "changed_by", "changed_at"]

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: Switch, form: Any, change: bool) -> None:
        switch = switch_set(name=obj.name, on=obj.on, reason=form.cleaned_data["reason"], actor=request.user)
        obj.pk = switch.pk
        messages.info(request, f"{switch.name} is now {'on' if switch.on else 'off'}.")


@admin.register(Waiver)
class WaiverAdmin(admin.ModelAdmin):
    list_display = ["check_name", "risk", "owner", "ticket", "deadline", "escalated_at", "closed_at"]
    list_filter = ["risk"]
