"""Read-only admin for on-chain records: operators look here; every change goes through the services."""

from __future__ import annotations

from django.contrib import admin

from ops.admin_base import ReadOnlyAdmin

from .models import ChainCursor, ChainDeposit, ChainTransfer, DepositAddress, HotWallet


@admin.register(ChainTransfer)
class ChainTransferAdmin(ReadOnlyAdmin):
    list_display = (
        "tx_hash",
        "withdrawal",
        "nonce",
        "seq",
        "status",
        "amount_u",
        "to_address",
        "block_number",
        "review_reason",
        "created_at",
    )
    list_filter = ("status",)
    search_fields = ("tx_hash", "to_address", "idempotency_key")
    exclude = ("raw_tx",)


@admin.register(ChainDeposit)
class ChainDepositAdmin(ReadOnlyAdmin):
    list_display = ("tx_hash", "log_index", "user", "amount_u", "status", "block_number", "review_reason", "seen_at")
    list_filter = ("status",)
    search_fields = ("tx_hash", "to_address", "from_address")


@admin.register(DepositAddress)
class DepositAddressAdmin(ReadOnlyAdmin):
    list_display = ("address", "user", "index", "created_at")
    search_fields = ("address",)


admin.site.register(HotWallet, ReadOnlyAdmin)
admin.site.register(ChainCursor, ReadOnlyAdmin)
