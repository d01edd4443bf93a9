"""Admin for users: players and operators with their roles."""

from typing import Any

from django import forms
from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.forms import UserChangeForm

from .models import User


class OperatorsAreNotPlayersForm(UserChangeForm):
    """Staff are never players: an account that holds money cannot be made an operator."""

    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned = self.cleaned_data
        becomes_staff = cleaned.get("is_staff") or cleaned.get("is_superuser")
        if becomes_staff and self.instance.pk and self.instance.ledger_accounts.exists():
            raise forms.ValidationError(
                "This account has player balances; operators hold none. Create a separate operator account."
            )
        return cleaned


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    form = OperatorsAreNotPlayersForm
    ordering = ["id"]
    list_display = ["email", "public_id", "is_staff", "role_names", "is_active", "date_joined"]
    list_filter = ["is_staff", "is_active", "groups"]
    search_fields = ["email", "public_id", "display_name"]
    readonly_fields = ["public_id", "date_joined", "last_login"]
    fieldsets = (
        (None, {"fields": ("email", "password", "public_id", "display_name")}),
        ("Roles", {"fields": ("is_active", "is_staff", "is_superuser", "groups")}),
        ("Dates", {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = ((None, {"classes": ("wide",), "fields": ("email", "password1", "password2", "is_staff")}),)
    filter_horizontal = ("groups",)

    @admin.display(description="roles")
    def role_names(self, obj: User) -> str:
        return ", ".join(obj.roles) or "-"
