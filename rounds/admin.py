"""The operators' console for rounds: pools, bets (read-only), settlement breakdown, prices, forced results.

Nothing money-related is editable here: every field is read-only. The price-entry proposal, the forced-result proposal (operator A proposes; a different operator B approves it in the proposals
queue, `ops.approvals`) and the emergency VOID (`rounds.overrides`) call services, which check permissions,
lock the round, move the money and write the audit records.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.views.main import ChangeList
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.urls import URLPattern, path, reverse

from ledger.admin_money import money_column
from ops.admin_base import ReadOnlyAdmin, ReadOnlyTabularInline, acting_operator, refusal_as_message
from ops.approvals import audit_trail_with_decisions, may_approve, proposals_for_subject

from .models import Bet, OracleObservation, Round
from .overrides import force_result_propose, oracle_price_propose, round_void
from .pools import pools_show, with_live_pools
from .selectors import settlement_breakdown
from .services import close_subject
from .settlement import force_subject

INLINE_BETS = 200
STAKE = money_column("stake_u", currency="round.currency", description="stake")
PAYOUT = money_column("payout_u", currency="round.currency", description="payout")


class PriceForm(forms.Form):
    """An official close read from a named source (a second operator must approve it before it counts)."""

    price = forms.DecimalField(max_digits=30, decimal_places=10, min_value=0)
    evidence = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        max_length=2000,
        help_text="Where the price was read (URL, terminal, screenshot reference).",
    )


class ForceForm(forms.Form):
    """A forced UP or DOWN with its reason and evidence (a second operator must approve it)."""

    result = forms.ChoiceField(choices=[("UP", "UP"), ("DOWN", "DOWN")])
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 3, "cols": 60}), max_length=2000)
    evidence = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        max_length=2000,
        help_text="Where the official close was read.",
    )


class VoidForm(forms.Form):
    """The emergency stop: one operator, a reason; every stake goes back."""

    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 3, "cols": 60}), max_length=2000)


class BetInline(ReadOnlyTabularInline):
    model = Bet
    fields = ("bet_id", "player", "side", "stake", "placed_at", "payout")
    readonly_fields = fields
    stake = staticmethod(STAKE)
    payout = staticmethod(PAYOUT)
    ordering = ("id",)
    show_change_link = False
    verbose_name_plural = f"bets (the first {INLINE_BETS}; all are in the Bets list)"

    def get_formset(self, request: HttpRequest, obj: Any = None, **kwargs: Any) -> Any:
        request._rounds_inline_round = obj  # type: ignore[attr-defined]
        return super().get_formset(request, obj, **kwargs)

    def get_queryset(self, request: HttpRequest) -> Any:
        """Show the round's first bets only: a round may hold a million."""
        queryset = super().get_queryset(request).select_related("player", "round")
        round_obj = getattr(request, "_rounds_inline_round", None)
        if round_obj is None:
            return queryset.none()
        first_ids = list(queryset.filter(round=round_obj).order_by("id").values_list("id", flat=True)[:INLINE_BETS])
        return queryset.filter(id__in=first_ids)


class RoundChangeList(ChangeList):
    """The rounds' list, an OPEN round's pools from its stripes (they are stored on the round at lock)."""

    def get_results(self, request: HttpRequest) -> None:
        super().get_results(request)
        for round_obj in self.result_list:  # evaluates the page once; the template reuses these objects
            pools_show(round_obj=round_obj)


@admin.register(Round)
class RoundAdmin(ReadOnlyAdmin):
    list_display = (
        "code",
        "status",
        money_column("up_pool_u"),
        money_column("down_pool_u"),
        "total",
        "bets",
        "result",
        "void_reason",
        money_column("fee_u"),
        money_column("breakage_u"),
        "lock_at",
        "settled_at",
    )
    list_filter = ("status", "result")
    search_fields = ("=code", "=settlement_flow_id")
    ordering = ("-code",)
    readonly_fields = (
        "code",
        "instrument",
        "currency",
        "status",
        "open_at",
        "lock_at",
        "close_at",
        "settle_after",
        "fee_bps",
        "min_stake",
        "reference_close",
        "reference_session",
        "rules_version",
        "previous_commit",
        "commit",
        "merkle_root",
        "locked_at",
        "up_pool",
        "down_pool",
        "up_bets",
        "down_bets",
        "result",
        "void_reason",
        "close_price",
        "price_evidence",
        "forced",
        "fee",
        "breakage",
        "payouts_total",
        "winners",
        "settled_at",
        "settlement_duration_s",
        "oracle_attempts",
        "oracle_last_error",
        "settlement_flow_id",
    )
    fields = readonly_fields  # the salt is never shown: it is revealed with the settlement
    min_stake = staticmethod(money_column("min_stake_u"))
    up_pool = staticmethod(money_column("up_pool_u"))
    down_pool = staticmethod(money_column("down_pool_u"))
    fee = staticmethod(money_column("fee_u"))
    breakage = staticmethod(money_column("breakage_u"))
    payouts_total = staticmethod(money_column("payouts_total_u"))
    inlines = [BetInline]
    change_form_template = "rounds/admin/round_change_form.html"

    def get_queryset(self, request: HttpRequest) -> QuerySet[Round]:
        return with_live_pools(super().get_queryset(request))

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return RoundChangeList

    def get_object(self, request: HttpRequest, object_id: str, from_field: str | None = None) -> Round | None:
        round_obj = super().get_object(request, object_id, from_field)
        return pools_show(round_obj=round_obj) if round_obj is not None else None  # read-only: never saved

    @admin.display(description="total", ordering="up_pool_u")
    def total(self, obj: Round) -> str:
        return money_column("total_pool_u")(obj)

    @admin.display(description="bets")
    def bets(self, obj: Round) -> int:
        return obj.up_bets + obj.down_bets

    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view
        return [
            path("<int:object_id>/enter-price/", view(self.enter_price_view), name="rounds_round_enter_price"),
            path("<int:object_id>/force/", view(self.force_view), name="rounds_round_force"),
            path("<int:object_id>/void/", view(self.void_view), name="rounds_round_void"),
            *super().get_urls(),
        ]

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        context = dict(extra_context or {})
        round_obj = Round.objects.filter(pk=object_id).first() if str(object_id).isdigit() else None
        if round_obj is not None:
            subject = force_subject(round_obj.code)
            may_force = request.user.has_perm("rounds.force_round_result")
            context.update(
                breakdown=settlement_breakdown(round_obj=round_obj) if round_obj.is_finished else None,
                observations=round_obj.observations.order_by("-id")[:50],
                decisions=[
                    {"proposal": p, "may_approve": may_approve(proposal=p, user=request.user)}
                    for p in [
                        *proposals_for_subject(subject=subject),
                        *proposals_for_subject(subject=close_subject(round_obj.code)),
                    ]
                ],
                audit_trail=audit_trail_with_decisions(
                    object_type="rounds.round", object_id=str(round_obj.pk), subject=subject
                ),
                can_enter_price=request.user.has_perm("rounds.enter_oracle_price") and not round_obj.is_finished,
                can_force=may_force and round_obj.status == Round.Status.LOCKED,
                can_void=may_force and round_obj.status in Round.UNSETTLED,
            )
        return super().change_view(request, object_id, form_url, context)

    def _form_page(self, request: HttpRequest, round_obj: Round, title: str, form: forms.Form) -> HttpResponse:
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "original": pools_show(round_obj=round_obj),  # an OPEN round's pools from its stripes
            "title": title,
            "form": form,
            "change_url": reverse("admin:rounds_round_change", args=[round_obj.pk]),
        }
        return render(request, "rounds/admin/round_action.html", context)

    def enter_price_view(self, request: HttpRequest, object_id: int) -> HttpResponse:
        """Propose an official close, with evidence; once a second operator approves it, it counts as a source."""
        round_obj = get_object_or_404(Round, pk=object_id)
        change_url = reverse("admin:rounds_round_change", args=[round_obj.pk])
        form = PriceForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            with refusal_as_message(request, "Price"):
                proposal = oracle_price_propose(
                    code=round_obj.code,
                    price=form.cleaned_data["price"],
                    evidence=form.cleaned_data["evidence"],
                    acting_user=acting_operator(request),
                )
                self.message_user(
                    request,
                    f"Proposal {proposal.pk} recorded; the price counts as an oracle source once a second operator "
                    "approves it.",
                    messages.WARNING,
                )
            return HttpResponseRedirect(change_url)
        return self._form_page(request, round_obj, f"Enter the official close of round {round_obj.code}", form)

    def force_view(self, request: HttpRequest, object_id: int) -> HttpResponse:
        """Propose a forced UP or DOWN; a different operator must approve it."""
        round_obj = get_object_or_404(Round, pk=object_id)
        change_url = reverse("admin:rounds_round_change", args=[round_obj.pk])
        form = ForceForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            with refusal_as_message(request, "Proposal"):
                proposal = force_result_propose(
                    code=round_obj.code, acting_user=acting_operator(request), **form.cleaned_data
                )
                self.message_user(
                    request, f"Proposal {proposal.pk} recorded; a second operator must approve it.", messages.WARNING
                )
            return HttpResponseRedirect(change_url)
        return self._form_page(request, round_obj, f"Propose a forced result for round {round_obj.code}", form)

    def void_view(self, request: HttpRequest, object_id: int) -> HttpResponse:
        """The emergency stop: void the round now (one operator, with a reason); every stake goes back."""
        round_obj = get_object_or_404(Round, pk=object_id)
        change_url = reverse("admin:rounds_round_change", args=[round_obj.pk])
        form = VoidForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            with refusal_as_message(request, "Void"):
                voided, _ = round_void(
                    code=round_obj.code, reason=form.cleaned_data["reason"], acting_user=acting_operator(request)
                )
                self.message_user(
                    request, f"Round {voided.code} is {voided.status}; stakes refunded.", messages.SUCCESS
                )
            return HttpResponseRedirect(change_url)
        return self._form_page(request, round_obj, f"Void round {round_obj.code} (emergency stop)", form)


@admin.register(Bet)
class BetAdmin(ReadOnlyAdmin):
    list_display = ("bet_id", "round", "player", "side", STAKE, "placed_at", PAYOUT)
    list_filter = ("side", "round__status")
    search_fields = ("=bet_id", "player__email", "=round__code", "=flow_id")
    list_select_related = ("round", "player")
    readonly_fields = ("bet_id", "round", "player", "account", "side", "stake", "placed_at", "payout", "flow_id")
    fields = readonly_fields
    stake = staticmethod(STAKE)
    payout = staticmethod(PAYOUT)


@admin.register(OracleObservation)
class OracleObservationAdmin(ReadOnlyAdmin):
    list_display = ("round", "kind", "source", "price", "error", "fetched_at", "entered_by")
    list_filter = ("kind",)
    readonly_fields = ("round", "kind", "source", "price", "error", "url", "evidence", "entered_by", "fetched_at")
    fields = readonly_fields
