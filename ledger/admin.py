"""The ledger in the admin: read-only. Accounts with balances, journals with their entries."""

from __future__ import annotations

from django.contrib import admin

from ops.admin_base import ReadOnlyAdmin, ReadOnlyTabularInline

from .admin_money import money_column
from .models import Account, Entry, Journal, LedgerBreach, ReconciliationRun

# No add, change or delete anywhere here: corrections are new journals, posted by services.


class EntryInline(ReadOnlyTabularInline):
    model = Entry
    fields = ("account", "currency", "amount", "created_at")
    readonly_fields = fields
    amount = staticmethod(money_column("amount_u", description="amount"))


@admin.register(Account)
class AccountAdmin(ReadOnlyAdmin):
    list_display = ["name", "currency", "kind", money_column("balance_u"), "owner"]
    list_filter = ["kind", "currency"]
    search_fields = ["name", "owner__email"]
    list_select_related = ["owner"]


@admin.register(Journal)
class JournalAdmin(ReadOnlyAdmin):
    list_display = ["id", "type", "reference", "actor_label", "created_at", "reverses"]
    list_filter = ["type"]
    search_fields = ["reference", "actor_label"]
    date_hierarchy = "created_at"
    inlines = [EntryInline]


@admin.register(Entry)
class EntryAdmin(ReadOnlyAdmin):
    list_display = ["id", "journal", "account", "currency", money_column("amount_u"), "created_at"]
    list_filter = ["currency", "account__kind"]
    search_fields = ["journal__reference", "account__name"]
    list_select_related = ["journal", "account"]


class LedgerBreachInline(ReadOnlyTabularInline):
    model = LedgerBreach
    fields = ("invariant", "currency", "detail")
    readonly_fields = fields


@admin.register(ReconciliationRun)
class ReconciliationRunAdmin(ReadOnlyAdmin):
    list_display = ["id", "started_at", "finished_at", "ok", "breach_count"]
    list_filter = ["ok"]
    inlines = [LedgerBreachInline]
