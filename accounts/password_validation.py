"""Password rules beyond Django's own: operators need longer passwords than players."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError


class StaffMinimumLengthValidator:
    """Refuse an operator's (is_staff) password shorter than `min_length` characters."""

    def __init__(self, min_length: int = 12) -> None:
        self.min_length = min_length

    def validate(self, password: str, user: Any = None) -> None:
        if user is not None and getattr(user, "is_staff", False) and len(password) < self.min_length:
            raise ValidationError(
                f"An operator's password must contain at least {self.min_length} characters.",
                code="password_too_short_for_staff",
                params={"min_length": self.min_length},
            )

    def get_help_text(self) -> str:
        return f"Operators' passwords must contain at least {self.min_length} characters."


class NotDemoPasswordValidator:
    """Refuse the demo accounts' passwords (`seed --demo`) outside ENVIRONMENT=development.

    Common passwords are refused everywhere by Django's CommonPasswordValidator (configured beside this one).
    """

    def validate(self, password: str, user: Any = None) -> None:
        from .demo import demo_allowed, is_demo_password

        if not demo_allowed() and is_demo_password(password):
            raise ValidationError(
                "This is a demo password; it is refused outside development.",
                code="password_is_demo",
            )

    def get_help_text(self) -> str:
        return "Your password cannot be one of the demo passwords."
