"""The ledger in the admin: read-only. Accounts with balances, journals with their entries."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from .currencies import CURRENCIES
from .models import Account, Entry, Journal, LedgerBreach, ReconciliationRun


class ReadOnlyAdmin(admin.ModelAdmin):
    """No add, change or delete: corrections are new journals, posted by services."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class EntryInline(admin.TabularInline):
    model = Entry
    fields = ["account", "currency", "amount_u", "created_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Account)
class AccountAdmin(ReadOnlyAdmin):
    list_display = ["name", "currency", "kind", "balance_display", "balance_u", "owner"]
    list_filter = ["kind", "currency"]
    search_fields = ["name", "owner__email"]
    list_select_related = ["owner"]

    @admin.display(description="balance")
    def balance_display(self, obj: Account) -> str:
        currency = CURRENCIES.get(obj.currency)
        return currency.format(obj.balance_u) if currency else str(obj.balance_u)


@admin.register(Journal)
class JournalAdmin(ReadOnlyAdmin):
    list_display = ["id", "type", "reference", "actor_label", "created_at", "reverses"]
    list_filter = ["type"]
    search_fields = ["reference", "actor_label"]
    date_hierarchy = "created_at"
    inlines = [EntryInline]


@admin.register(Entry)
class EntryAdmin(ReadOnlyAdmin):
    list_display = ["id", "journal", "account", "currency", "amount_u", "created_at"]
    list_filter = ["currency", "account__kind"]
    search_fields = ["journal__reference", "account__name"]
    list_select_related = ["journal", "account"]


class LedgerBreachInline(admin.TabularInline):
    model = LedgerBreach
    fields = ["invariant", "currency", "detail"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(ReconciliationRun)
class ReconciliationRunAdmin(ReadOnlyAdmin):
    list_display = ["id", "started_at", "finished_at", "ok", "breach_count"]
    list_filter = ["ok"]
    inlines = [LedgerBreachInline]
