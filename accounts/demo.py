"""The demo accounts `seed --demo` creates, and the rule that keeps them (and their passwords) in development.

Only ENVIRONMENT=development may hold them: elsewhere `seed --demo` is refused, the password validator
`accounts.password_validation.NotDemoPasswordValidator` refuses the demo passwords, and the deploy check
`accounts.E001` (`accounts/checks.py`, run by `bin/backoffice` before serving) fails while a demo
account exists in the database.
"""

from __future__ import annotations

from django.conf import settings

from accounts.roles import ADMIN, FINANCE, SUPPORT

DEMO_OPERATORS = [
    ("admin@example.com", "admin-demo-pass", ADMIN, True),
    ("finance@example.com", "finance-demo-pass", FINANCE, False),
    ("finance2@example.com", "finance2-demo-pass", FINANCE, False),
    ("support@example.com", "support-demo-pass", SUPPORT, False),
]
DEMO_PLAYERS = [
    ("alice@example.com", 250_000_000, 10_000),
    ("bob@example.com", 100_000_000, 5_000),
    ("carol@example.com", 50_000_000, 0),
]
PLAYER_PASSWORD = "player-demo-pass"
DEMO_PASSWORDS = frozenset([password for _, password, _, _ in DEMO_OPERATORS] + [PLAYER_PASSWORD])
DEMO_EMAILS = tuple([email for email, *_ in DEMO_OPERATORS] + [email for email, *_ in DEMO_PLAYERS])
SEED_PLAYER_PREFIX = "seed-player"  # `seed --users N` players (the demo players' password in development)
DEMO_ENVIRONMENT = "development"


def demo_allowed() -> bool:
    """Whether demo accounts and passwords are allowed here (ENVIRONMENT=development only)."""
    return str(settings.ENVIRONMENT) == DEMO_ENVIRONMENT


def is_demo_password(password: str) -> bool:
    """A demo password, or one built like them (`<anything>-demo-pass`), in any letter case."""
    lowered = (password or "").strip().lower()
    return lowered in DEMO_PASSWORDS or lowered.endswith("-demo-pass") or lowered == "demo-pass"
