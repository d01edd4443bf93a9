"""Operations in the admin: the audit log (read-only), switches, waivers, worker runs."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.urls import URLPattern, path, reverse

from .admin_base import ReadOnlyAdmin, acting_operator, refusal_as_message
from .approvals import decision_approve, decision_reject, may_approve
from .models import AuditRecord, IdempotencyKey, Proposal, Switch, Waiver, WorkerRun
from .switches import switch_clear_propose, switch_set


@admin.register(AuditRecord)
class AuditRecordAdmin(ReadOnlyAdmin):
    list_display = [
        "created_at",
        "actor_label",
        "action",
        "object_type",
        "object_id",
        "from_state",
        "to_state",
        "reason",
    ]
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

    def clean(self) -> dict[str, Any]:
        """Refuse one operator turning off a switch a failed invariant turned on (two operators clear it)."""
        cleaned = super().clean() or {}
        held = Switch.objects.filter(name=cleaned.get("name"), on=True).exclude(tripped_by="").first()
        if held is not None and not cleaned.get("on"):
            raise forms.ValidationError(
                f"{held.name} was turned on automatically by a failed ledger invariant ({held.tripped_by}); one "
                "operator cannot turn it off. Use “Propose clearing” on this page; a different operator approves "
                "the proposal. Nothing was changed."
            )
        return cleaned


class ClearForm(forms.Form):
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        max_length=2000,
        label="Why it is safe to pay again (kept in the audit log)",
    )


@admin.register(Switch)
class SwitchAdmin(admin.ModelAdmin):
    """Switches change only through `switch_set`, which records who, when and why.

    A switch a failed invariant turned on (`tripped_by`) is cleared by two operators: “Propose clearing”
    records a proposal; a different operator approves it in the proposals queue.
    """

    form = SwitchForm
    list_display = ["name", "on", "reason", "tripped_by", "changed_by", "changed_at"]
    readonly_fields = ["tripped_by"]
    change_form_template = "ops/admin/switch_change_form.html"

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_urls(self) -> list[URLPattern]:
        return [
            path(
                "<int:object_id>/propose-clear/",
                self.admin_site.admin_view(self.propose_clear_view),
                name="ops_switch_propose_clear",
            ),
            *super().get_urls(),
        ]

    def propose_clear_view(self, request: HttpRequest, object_id: int) -> HttpResponse:
        """Operator A proposes clearing an automatic switch; it stays on until operator B approves."""
        switch = get_object_or_404(Switch, pk=object_id)
        back = reverse("admin:ops_switch_change", args=[switch.pk])
        form = ClearForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            with refusal_as_message(request, "Clear"):
                proposal = switch_clear_propose(
                    name=switch.name, reason=form.cleaned_data["reason"], acting_user=acting_operator(request)
                )
                self.message_user(
                    request,
                    f"Proposal {proposal.pk} recorded; {switch.name} stays on until a different operator approves it.",
                    messages.WARNING,
                )
                return HttpResponseRedirect(reverse("admin:ops_proposal_change", args=[proposal.pk]))
            return HttpResponseRedirect(back)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "form": form,
            "title": f"Propose clearing {switch.name}",
            "back_url": back,
            "switch": switch,
        }
        return render(request, "ops/admin/switch_propose_clear.html", context)

    def save_model(self, request: HttpRequest, obj: Switch, form: Any, change: bool) -> None:
        switch = switch_set(name=obj.name, on=obj.on, reason=form.cleaned_data["reason"], actor=request.user)
        obj.pk = switch.pk
        messages.info(request, f"{switch.name} is now {'on' if switch.on else 'off'}.")


@admin.register(Waiver)
class WaiverAdmin(admin.ModelAdmin):
    list_display = ["check_name", "risk", "owner", "ticket", "deadline", "escalated_at", "closed_at"]
    list_filter = ["risk"]


class DecisionReasonForm(forms.Form):
    """The deciding operator's own reason, required to approve or reject (kept on their audit row)."""

    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        max_length=2000,
        label="Your reason (kept in the audit log)",
    )


@admin.register(Proposal)
class ProposalAdmin(ReadOnlyAdmin):
    """Manual money decisions under maker-checker: pending ones first; approve is offered to others only."""

    list_display = [
        "id",
        "kind",
        "subject",
        "state",
        "proposed_by",
        "reason",
        "decided_by",
        "decision_reason",
        "created_at",
        "decided_at",
    ]
    list_filter = ["state", "kind"]
    search_fields = ["=id", "subject", "proposed_by__email", "decided_by__email", "reason", "decision_reason"]
    list_select_related = ["proposed_by", "decided_by"]
    change_form_template = "ops/admin/proposal_change_form.html"
    readonly_fields = ["money"]

    @admin.display(description="money (major units)")
    def money(self, obj: Proposal) -> str:
        """The amounts at stake, and an adjustment's legs as `account: amount`, in major units."""
        from django.utils.html import format_html_join
        from django.utils.safestring import mark_safe

        from ledger.models import Account
        from ledger.money import format_money_safe

        lines = [f"{code}: {format_money_safe(amount, code)}" for code, amount in sorted(obj.amounts.items())]
        legs = obj.payload.get("legs") if isinstance(obj.payload.get("legs"), list) else []
        accounts = Account.objects.in_bulk([leg.get("account_id") for leg in legs if isinstance(leg, dict)])
        for leg in legs:
            account = accounts.get(leg.get("account_id")) if isinstance(leg, dict) else None
            if account is None or not isinstance(leg.get("amount_u"), int):
                lines.append(repr(leg))
                continue
            lines.append(f"{account.name}: {format_money_safe(leg['amount_u'], account.currency)}")
        return format_html_join(mark_safe("<br>"), "{}", ((line,) for line in lines))

    def get_urls(self) -> list[URLPattern]:
        return [
            path(
                "<int:proposal_id>/decide/<str:decision>/",
                self.admin_site.admin_view(self.decide_view),
                name="ops_proposal_decide",
            ),
            *super().get_urls(),
        ]

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        proposal = Proposal.objects.filter(pk=object_id).first() if str(object_id).isdigit() else None
        context = dict(extra_context or {})
        if proposal is not None:
            context["decisions"] = [
                {"proposal": proposal, "may_approve": may_approve(proposal=proposal, user=request.user)}
            ]
        return super().change_view(request, object_id, form_url, context)

    def decide_view(self, request: HttpRequest, proposal_id: int, decision: str) -> HttpResponse:
        """Approve (apply it now) or reject a pending proposal, with a reason."""
        proposal = get_object_or_404(Proposal.objects.select_related("proposed_by"), pk=proposal_id)
        if decision not in ("approve", "reject"):
            raise Http404(f"No decision {decision!r}.")
        back = reverse("admin:ops_proposal_change", args=[proposal.pk])
        form = DecisionReasonForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            with refusal_as_message(request, decision.title()):
                if decision == "approve":
                    decision_approve(
                        proposal_id=proposal.pk,
                        acting_user=acting_operator(request),
                        reason=form.cleaned_data["reason"],
                    )
                else:
                    decision_reject(
                        proposal_id=proposal.pk,
                        acting_user=acting_operator(request),
                        reason=form.cleaned_data["reason"],
                    )
                proposal.refresh_from_db()
                self.message_user(request, f"Proposal {proposal.pk} is now {proposal.state}.", messages.SUCCESS)
            return HttpResponseRedirect(request.GET.get("next") or back)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "proposal": proposal,
            "form": form,
            "title": f"{decision.title()} proposal {proposal.pk}",
            "back_url": back,
            "submit_label": "Approve and apply" if decision == "approve" else "Reject",
        }
        return render(request, "ops/admin/proposal_decide.html", context)
