"""Random identifiers in the shapes Stripe and Adyen hand out."""

import secrets
import string

ALPHANUMERIC = string.ascii_letters + string.digits
UPPER_ALPHANUMERIC = string.ascii_uppercase + string.digits


def token(length: int, alphabet: str = ALPHANUMERIC) -> str:
    """Return ``length`` random characters drawn from ``alphabet``."""
    return "".join(secrets.choice(alphabet) for _ in range(length))


def stripe_id(prefix: str) -> str:
    """Return a Stripe-style object id such as ``pi_3Nq...``."""
    return f"{prefix}_{token(24)}"


def adyen_reference() -> str:
    """Return a 16-character Adyen reference (pspReference, transfer id)."""
    return token(16, UPPER_ALPHANUMERIC)
