"""The operators' console for rounds: pools, bets (read-only), settlement breakdown, prices, forced results.

Nothing money-related is editable here: every field is read-only. The price-entry form and the
force-result request (operator A proposes, a different operator B approves) call `rounds.services`,
which check permissions, lock the round, move the money and write the audit records.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.urls import URLPattern, path, reverse

from ops.errors import ApplicationError
from ops.models import AuditRecord

from .models import Bet, ForceResultRequest, OracleObservation, Round
from .selectors import settlement_breakdown
from .services import (
    force_result_approve,
    force_result_propose,
    force_result_reject,
    oracle_price_enter,
)

INLINE_BETS = 200


class PriceForm(forms.Form):
    """An official close read from a named source."""

    price = forms.DecimalField(max_digits=30, decimal_places=10, min_value=0)
    evidence = forms.CharField(widget=forms.Textarea(attrs={"rows": 3, "cols": 60}), max_length=2000,
                               help_text="Where the price was read (URL, terminal, screenshot reference).")


class ForceForm(forms.Form):
    """A forced result with its reason and evidence (needs a second operator's approval)."""

    result = forms.ChoiceField(choices=[("UP", "UP"), ("DOWN", "DOWN"), ("VOID", "VOID (refund all)")])
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 3, "cols": 60}), max_length=2000)
    evidence = forms.CharField(widget=forms.Textarea(attrs={"rows": 3, "cols": 60}), max_length=2000)


class DecisionForm(forms.Form):
    """A rejection's reason."""

    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 3, "cols": 60}), max_length=2000)


class ReadOnlyMixin:
    """Nobody adds, edits or deletes these rows in the admin."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class BetInline(ReadOnlyMixin, admin.TabularInline):
    model = Bet
    fields = ("bet_id", "player", "side", "stake_u", "placed_at", "payout_u")
    readonly_fields = fields
    ordering = ("id",)
    extra = 0
    show_change_link = False
    verbose_name_plural = f"bets (the first {INLINE_BETS}; all are in the Bets list)"

    def get_formset(self, request: HttpRequest, obj: Any = None, **kwargs: Any) -> Any:
        request._rounds_inline_round = obj  # type: ignore[attr-defined]
        return super().get_formset(request, obj, **kwargs)

    def get_queryset(self, request: HttpRequest) -> Any:
        """Show the round's first bets only: a round may hold a million."""
        queryset = super().get_queryset(request).select_related("player")
        round_obj = getattr(request, "_rounds_inline_round", None)
        if round_obj is None:
            return queryset.none()
        first_ids = list(
            queryset.filter(round=round_obj).order_by("id").values_list("id", flat=True)[:INLINE_BETS]
        )
        return queryset.filter(id__in=first_ids)


@admin.register(Round)
class RoundAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ("code", "status", "up_pool_u", "down_pool_u", "total", "bets", "result", "void_reason",
                    "fee_u", "breakage_u", "lock_at", "settled_at")
    list_filter = ("status", "result")
    search_fields = ("=code",)
    ordering = ("-code",)
    readonly_fields = (
        "code", "instrument", "currency", "status", "open_at", "lock_at", "close_at", "settle_after", "fee_bps",
        "min_stake_u", "reference_close", "reference_session", "rules_version", "previous_commit", "commit",
        "merkle_root", "locked_at", "up_pool_u", "down_pool_u", "up_bets", "down_bets", "result", "void_reason",
        "close_price", "price_evidence", "forced", "fee_u", "breakage_u", "payouts_total_u", "winners",
        "settled_at", "settlement_duration_s", "oracle_attempts", "oracle_last_error",
    )
    fields = readonly_fields  # the salt is never shown: it is revealed with the settlement
    inlines = [BetInline]
    change_form_template = "rounds/admin/round_change_form.html"

    @admin.display(description="total", ordering="up_pool_u")
    def total(self, obj: Round) -> int:
        return obj.total_pool_u

    @admin.display(description="bets")
    def bets(self, obj: Round) -> int:
        return obj.up_bets + obj.down_bets

    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view
        return [
            path("<int:object_id>/enter-price/", view(self.enter_price_view), name="rounds_round_enter_price"),
            path("<int:object_id>/force/", view(self.force_view), name="rounds_round_force"),
            path("force-request/<int:request_id>/<str:decision>/", view(self.decide_view),
                 name="rounds_round_force_decide"),
            *super().get_urls(),
        ]

    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "",
                    extra_context: dict[str, Any] | None = None) -> HttpResponse:
        context = dict(extra_context or {})
        round_obj = Round.objects.filter(pk=object_id).first()
        if round_obj is not None:
            context.update(
                breakdown=settlement_breakdown(round_obj=round_obj) if round_obj.is_finished else None,
                observations=round_obj.observations.order_by("-id")[:50],
                force_requests=round_obj.force_requests.select_related("proposed_by", "decided_by"),
                audit_trail=AuditRecord.objects.filter(object_type="rounds.round", object_id=str(round_obj.pk)),
                can_enter_price=request.user.has_perm("rounds.enter_oracle_price") and not round_obj.is_finished,
                can_force=request.user.has_perm("rounds.force_round_result")
                and round_obj.status == Round.Status.LOCKED,
            )
        return super().change_view(request, object_id, form_url, context)

    def _form_page(self, request: HttpRequest, round_obj: Round, title: str, form: forms.Form) -> HttpResponse:
        context = {
            **self.admin_site.each_context(request), "opts": self.model._meta, "original": round_obj,
            "title": title, "form": form,
            "change_url": reverse("admin:rounds_round_change", args=[round_obj.pk]),
        }
        return render(request, "rounds/admin/round_action.html", context)

    def enter_price_view(self, request: HttpRequest, object_id: int) -> HttpResponse:
        """Record an operator's official close, with evidence (it counts as one oracle source)."""
        round_obj = get_object_or_404(Round, pk=object_id)
        change_url = reverse("admin:rounds_round_change", args=[round_obj.pk])
        form = PriceForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                oracle_price_enter(code=round_obj.code, price=form.cleaned_data["price"],
                                   evidence=form.cleaned_data["evidence"], acting_user=request.user)
            except ApplicationError as exc:
                self.message_user(request, f"Price refused: {exc.detail}", messages.ERROR)
            else:
                self.message_user(request, "Price recorded as an oracle source.", messages.SUCCESS)
            return HttpResponseRedirect(change_url)
        return self._form_page(request, round_obj, f"Enter the official close of round {round_obj.code}", form)

    def force_view(self, request: HttpRequest, object_id: int) -> HttpResponse:
        """Propose a forced result; a different operator must approve it."""
        round_obj = get_object_or_404(Round, pk=object_id)
        change_url = reverse("admin:rounds_round_change", args=[round_obj.pk])
        form = ForceForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                force_result_propose(code=round_obj.code, acting_user=request.user, **form.cleaned_data)
            except ApplicationError as exc:
                self.message_user(request, f"Proposal refused: {exc.detail}", messages.ERROR)
            else:
                self.message_user(request, "Proposed; a second operator must approve it.", messages.WARNING)
            return HttpResponseRedirect(change_url)
        return self._form_page(request, round_obj, f"Force the result of round {round_obj.code}", form)

    def decide_view(self, request: HttpRequest, request_id: int, decision: str) -> HttpResponse:
        """Approve (settles the round) or reject a pending force-result request."""
        proposal = get_object_or_404(ForceResultRequest.objects.select_related("round"), pk=request_id)
        change_url = reverse("admin:rounds_round_change", args=[proposal.round_id])
        if decision == "approve":
            if request.method == "POST":
                try:
                    round_obj = force_result_approve(request_id=proposal.pk, acting_user=request.user)
                except ApplicationError as exc:
                    self.message_user(request, f"Approval refused: {exc.detail}", messages.ERROR)
                else:
                    self.message_user(request, f"Round {round_obj.code} is {round_obj.status} "
                                      f"({round_obj.result}).", messages.SUCCESS)
                return HttpResponseRedirect(change_url)
            form: forms.Form = forms.Form()
        elif decision == "reject":
            form = DecisionForm(request.POST or None)
            if request.method == "POST" and form.is_valid():
                try:
                    force_result_reject(request_id=proposal.pk, acting_user=request.user,
                                        reason=form.cleaned_data["reason"])
                except ApplicationError as exc:
                    self.message_user(request, f"Rejection refused: {exc.detail}", messages.ERROR)
                else:
                    self.message_user(request, "Request rejected; nothing moved.", messages.SUCCESS)
                return HttpResponseRedirect(change_url)
        else:
            self.message_user(request, f"Unknown decision {decision!r}.", messages.ERROR)
            return HttpResponseRedirect(change_url)
        title = (f"{decision.title()} forcing {proposal.result} on round {proposal.round.code} "
                 f"(proposed by {proposal.proposed_by.email}: {proposal.reason})")
        return self._form_page(request, proposal.round, title, form)


@admin.register(Bet)
class BetAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ("bet_id", "round", "player", "side", "stake_u", "placed_at", "payout_u")
    list_filter = ("side", "round__status")
    search_fields = ("=bet_id", "player__email", "=round__code")
    list_select_related = ("round", "player")
    readonly_fields = ("bet_id", "round", "player", "account", "side", "stake_u", "placed_at", "payout_u")
    fields = readonly_fields


@admin.register(OracleObservation)
class OracleObservationAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ("round", "kind", "source", "price", "error", "fetched_at", "entered_by")
    list_filter = ("kind",)
    readonly_fields = ("round", "kind", "source", "price", "error", "url", "evidence", "entered_by", "fetched_at")
    fields = readonly_fields


@admin.register(ForceResultRequest)
class ForceResultRequestAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ("round", "result", "state", "proposed_by", "proposed_at", "decided_by", "decided_at")
    list_filter = ("state", "result")
    readonly_fields = ("round", "result", "reason", "evidence", "state", "proposed_by", "proposed_at",
                       "decided_by", "decided_at")
    fields = readonly_fields
