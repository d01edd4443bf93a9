"""The operators' console: withdrawals, the manual-review queue, and transition buttons.

Every button and the bulk action call the same services as the API (lock, permission, four eyes,
ledger, audit); no form here can set a state or an amount: every field is read-only.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import URLPattern, path, reverse
from django_fsm import can_proceed, has_transition_perm

from ledger.admin_money import money_column
from ledger.money import format_money_safe
from ops.admin_base import ReadOnlyAdmin, acting_operator, refusal_as_message
from ops.approvals import audit_trail_with_decisions, may_approve, proposals_for_subject
from ops.errors import ApplicationError

from .leases import lease_line
from .models import ManualReviewWithdrawal, PayoutAttempt, PayoutEvent, Withdrawal
from .selectors import (
    withdrawal_attempts,
    withdrawal_destination_label,
    withdrawal_entries,
    withdrawal_get_for_staff,
    withdrawal_pending_signoffs,
    withdrawal_subject,
)
from .services import (
    RESOLVE_DECISIONS,
    withdrawal_approve,
    withdrawal_reject,
    withdrawal_resolve,
)

OPERATOR_ACTIONS: dict[str, dict[str, Any]] = {
    "approve": {"label": "Approve", "reason_required": False},
    "reject": {"label": "Reject (release funds)", "reason_required": True},
    "confirm_sent": {"label": "Confirm sent (burn funds)", "reason_required": True},
    "refund_failed": {"label": "Refund (release funds)", "reason_required": True},
    "retry": {"label": "Retry payout", "reason_required": True},
}


class ReasonForm(forms.Form):
    """The operator's reason, kept in the audit log."""

    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 3, "cols": 60}), required=False, max_length=2000)

    def __init__(self, *args: Any, reason_required: bool = True, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["reason"].required = reason_required


def run_operator_action(*, action: str, withdrawal_id: int, acting_user: Any, reason: str) -> Withdrawal:
    """Call the service behind one console button."""
    if action == "approve":
        return withdrawal_approve(withdrawal_id=withdrawal_id, acting_user=acting_user, reason=reason)
    if action == "reject":
        return withdrawal_reject(withdrawal_id=withdrawal_id, acting_user=acting_user, reason=reason)
    if action in RESOLVE_DECISIONS:
        return withdrawal_resolve(withdrawal_id=withdrawal_id, acting_user=acting_user, decision=action, reason=reason)
    raise ValueError(f"unknown action {action!r}")


@admin.register(Withdrawal)
class WithdrawalAdmin(ReadOnlyAdmin):
    """Read-only: nobody adds, edits or deletes withdrawals here; the buttons call the services."""

    list_display = (
        "id",
        "user_email",
        "amount",
        "provider",
        "paid_to",
        "state",
        "psp_reference",
        "created_at",
        "state_changed_at",
    )
    list_filter = ["state", "provider", "currency"]
    search_fields = ("=id", "user__email", "psp_reference", "=flow_id")
    list_select_related = ("user",)
    ordering = ["-id"]
    readonly_fields = (
        "user",
        "amount",
        "currency",
        "provider",
        "paid_to",
        "destination",
        "state",
        "payout_generation",
        "psp_reference",
        "created_at",
        "state_changed_at",
        "flow_id",
        "psp_call_lease",
    )
    fields = readonly_fields
    actions = ["bulk_approve"]
    change_form_template = "payouts/admin/withdrawal_change_form.html"

    def has_approve_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.has_perm("payouts.approve_withdrawal"))

    @admin.display(description="user", ordering="user__email")
    def user_email(self, obj: Withdrawal) -> str:
        return obj.user.email

    amount = staticmethod(money_column("amount_u", description="amount"))

    @admin.display(description="PSP call in flight")
    def psp_call_lease(self, obj: Withdrawal) -> str:
        return lease_line(obj) or "none"

    @admin.display(description="paid to")
    def paid_to(self, obj: Withdrawal) -> str:
        """The destination the player registered with this withdrawal, checked as its rail declares it."""
        return withdrawal_destination_label(obj)

    @admin.action(description="Approve selected withdrawals (same rules as one by one)", permissions=["approve"])
    def bulk_approve(self, request: HttpRequest, queryset: QuerySet[Withdrawal]) -> None:
        done, pending, refused = 0, 0, []
        for withdrawal_id in queryset.order_by("pk").values_list("pk", flat=True):
            try:
                withdrawal = withdrawal_approve(  # no reason of their own: a second operator is refused here
                    withdrawal_id=withdrawal_id,
                    acting_user=acting_operator(request),
                    default_reason="bulk approval in the admin",
                )
            except ApplicationError as exc:
                refused.append(f"#{withdrawal_id}: {exc.detail}")
                continue
            if withdrawal.state == Withdrawal.State.APPROVED:
                done += 1
            else:
                pending += 1
        if done:
            self.message_user(request, f"Approved {done} withdrawal(s).", messages.SUCCESS)
        if pending:
            self.message_user(
                request,
                f"{pending} withdrawal(s) above the four-eyes threshold await a second operator.",
                messages.WARNING,
            )
        for line in refused:
            self.message_user(request, f"Not approved {line}", messages.ERROR)

    def get_urls(self) -> list[URLPattern]:
        opts = self.model._meta
        return [
            path(
                "<int:object_id>/act/<str:action>/",
                self.admin_site.admin_view(self.operator_action_view),
                name=f"{opts.app_label}_{opts.model_name}_act",
            ),
            *super().get_urls(),
        ]

    def available_actions(self, request: HttpRequest, withdrawal: Withdrawal) -> list[dict[str, str]]:
        """Return the buttons this operator may press on this withdrawal now.

        A decision this operator proposed is not offered again (a different operator must approve it);
        one proposed by someone else is offered as the second pair of eyes.
        """
        opts = self.model._meta
        pending = {s["action"]: s for s in withdrawal_pending_signoffs(withdrawal=withdrawal)}
        buttons = []
        for action, spec in OPERATOR_ACTIONS.items():
            method = getattr(withdrawal, action)
            if not (can_proceed(method) and has_transition_perm(method, request.user)):
                continue
            label = spec["label"]
            if action in pending:
                if pending[action]["operator"] == acting_operator(request).email:
                    continue
                label = f"{label}: second operator"
            url = reverse(f"admin:{opts.app_label}_{opts.model_name}_act", args=[withdrawal.pk, action])
            buttons.append({"action": action, "label": label, "url": url})
        return buttons

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        context = dict(extra_context or {})
        try:
            withdrawal = withdrawal_get_for_staff(withdrawal_id=object_id)
        except ApplicationError:
            return super().change_view(request, object_id, form_url, extra_context)
        subject = withdrawal_subject(withdrawal.pk)
        context.update(
            operator_actions=self.available_actions(request, withdrawal),
            ledger_entries=withdrawal_entries(withdrawal=withdrawal),
            audit_trail=audit_trail_with_decisions(
                object_type="payouts.withdrawal", object_id=str(withdrawal.pk), subject=subject
            ),
            payout_attempts=withdrawal_attempts(withdrawal=withdrawal),
            decisions=[
                {"proposal": p, "may_approve": may_approve(proposal=p, user=request.user)}
                for p in proposals_for_subject(subject=subject)
            ],
            payout_events=withdrawal.events.order_by("id"),
        )
        return super().change_view(request, object_id, form_url, context)

    def _is_second_operator(self, request: HttpRequest, withdrawal: Withdrawal, action: str) -> bool:
        """Whether pressing this button applies another operator's proposal: then the reason is required."""
        me = acting_operator(request).email
        return any(
            s["action"] == action and s["operator"] != me for s in withdrawal_pending_signoffs(withdrawal=withdrawal)
        )

    def operator_action_view(self, request: HttpRequest, object_id: int, action: str) -> HttpResponse:
        """Ask for a reason, then call the service; the result is shown as a message."""
        opts = self.model._meta
        change_url = reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[object_id])
        if action not in OPERATOR_ACTIONS:
            self.message_user(request, f"Unknown action {action!r}.", messages.ERROR)
            return HttpResponseRedirect(change_url)
        try:
            withdrawal = withdrawal_get_for_staff(withdrawal_id=object_id)
        except ApplicationError as exc:
            self.message_user(request, exc.detail, messages.ERROR)
            return HttpResponseRedirect(reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist"))
        spec = OPERATOR_ACTIONS[action]
        form = ReasonForm(
            request.POST or None,
            reason_required=spec["reason_required"] or self._is_second_operator(request, withdrawal, action),
        )
        if request.method == "POST" and form.is_valid():
            with refusal_as_message(request, spec["label"]):
                after = run_operator_action(
                    action=action,
                    withdrawal_id=withdrawal.pk,
                    acting_user=acting_operator(request),
                    reason=form.cleaned_data["reason"],
                )
                if after.state == withdrawal.state:
                    self.message_user(
                        request,
                        "Proposed; a different operator must approve it (above the four-eyes threshold, "
                        "or a payout confirmed as sent that the PSP never said was paid).",
                        messages.WARNING,
                    )
                else:
                    self.message_user(request, f"Withdrawal {after.pk} is now {after.state}.", messages.SUCCESS)
            return HttpResponseRedirect(change_url)
        context = {
            **self.admin_site.each_context(request),
            "opts": opts,
            "original": withdrawal,
            "title": f"{spec['label']}: withdrawal {withdrawal.pk}",
            "action_label": spec["label"],
            "form": form,
            "change_url": change_url,
            "amount": format_money_safe(withdrawal.amount_u, withdrawal.currency),
        }
        return render(request, "payouts/admin/withdrawal_action.html", context)


@admin.register(ManualReviewWithdrawal)
class ManualReviewAdmin(WithdrawalAdmin):
    """The manual-review queue: failed payouts, oldest first."""

    list_filter = ["provider", "currency"]
    ordering = ["state_changed_at", "id"]
    actions = []

    def get_queryset(self, request: HttpRequest) -> QuerySet[Withdrawal]:
        return super().get_queryset(request).filter(state=Withdrawal.State.PAYOUT_FAILED)


@admin.register(PayoutAttempt)
class PayoutAttemptAdmin(ReadOnlyAdmin):
    list_display: tuple[str, ...] = (
        "id",
        "withdrawal",
        "provider",
        "idempotency_key",
        "outcome",
        "psp_reference",
        "lease_owner",
        "took_over_from",
        "started_at",
    )
    list_filter = ["provider", "outcome"]
    search_fields = ["idempotency_key", "psp_reference", "=withdrawal__id"]


@admin.register(PayoutEvent)
class PayoutEventAdmin(PayoutAttemptAdmin):
    list_display = ("id", "provider", "event_id", "event_type", "withdrawal", "result", "received_at")
    list_filter = ["provider", "event_type"]
    search_fields = ["event_id", "=withdrawal__id"]
