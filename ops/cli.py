"""Helpers shared by management commands: who is acting, and finding users."""

from __future__ import annotations

import getpass
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import CommandError


def operator_from_option(email: str | None) -> Any:
    """Return the staff user named by --operator, or a label for the OS user running the command."""
    if email:
        user = get_user_model().objects.filter(email=email.strip().lower(), is_staff=True, is_active=True).first()
        if user is None:
            raise CommandError(f"No active operator with email {email!r}.")
        return user
    try:
        return f"cli:{getpass.getuser()}"
    except Exception:
        return "cli:unknown"


def user_by_email(email: str) -> Any:
    """Return the user with this email or raise a one-line CommandError."""
    user = get_user_model().objects.filter(email=(email or "").strip().lower()).first()
    if user is None:
        raise CommandError(f"No user with email {email!r}.")
    return user
