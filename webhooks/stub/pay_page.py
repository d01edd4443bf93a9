"""The local PSP's pay page: what a customer would see at Stripe or Adyen, reduced to "Pay" and "Decline".

Plain HTML with one form (no JavaScript); every value shown is escaped, since the amount, reference and
description come from whoever created the payment.
"""

from __future__ import annotations

from html import escape
from typing import Any

from .state import JSON

_STYLE = (
    "body{font-family:sans-serif;max-width:36em;margin:2em auto;padding:0 1em}"
    "dt{font-weight:bold}dd{margin:0 0 .6em}button{font-size:1.1em;margin-right:1em;padding:.3em 1.2em}"
)


def _row(name: str, value: Any) -> str:
    return f"<dt>{escape(name)}</dt><dd>{escape(str(value))}</dd>"


def describe(kind: str, obj: JSON) -> list[tuple[str, Any]]:
    """The lines the page shows about a PaymentIntent or a Checkout session."""
    if kind == "stripe_payment_intent":
        return [
            ("PSP", "Stripe (PaymentIntent)"),
            ("Id", obj.get("id", "")),
            ("Amount (minor units)", f"{obj.get('amount', '')} {str(obj.get('currency', '')).upper()}"),
            ("Description", obj.get("description") or ""),
            ("Deposit reference", (obj.get("metadata") or {}).get("deposit_reference", "")),
            ("Status", obj.get("status", "")),
        ]
    amount = obj.get("amount") or {}
    return [
        ("PSP", "Adyen (Checkout session)"),
        ("Id", obj.get("id", "")),
        ("Amount (minor units)", f"{amount.get('value', '')} {amount.get('currency', '')}"),
        ("Merchant account", obj.get("merchantAccount", "")),
        ("Reference", obj.get("reference", "")),
        ("Status", obj.get("status") or "active"),
    ]


def page(kind: str, obj: JSON, *, is_open: bool, message: str = "") -> str:
    """The pay page: the payment, an optional result line, and the Pay / Decline form while it is open."""
    psp_id = escape(str(obj.get("id", "")))
    rows = "".join(_row(name, value) for name, value in describe(kind, obj))
    note = f"<p><strong>{escape(message)}</strong></p>" if message else ""
    form = (
        f'<form method="post" action="/_stub/pay/{psp_id}">'
        '<button type="submit" name="outcome" value="succeeded">Pay</button>'
        '<button type="submit" name="outcome" value="failed">Decline</button>'
        "</form>"
        if is_open
        else "<p>This payment is settled; the back office has been sent its webhook.</p>"
    )
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>Local PSP: pay {psp_id}</title><style>{_STYLE}</style></head><body>"
        f"<h1>Local PSP (test mode)</h1><dl>{rows}</dl>{note}{form}"
        "<p><small>Not a real PSP: the local stub (docs/ops/local_psp.md).</small></p></body></html>"
    )


def not_found_page(psp_id: str) -> str:
    """The page for an id the stub never created."""
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Local PSP: not found</title></head>'
        f"<body><h1>Local PSP (test mode)</h1><p>No payment intent or Checkout session {escape(psp_id)!s} "
        "at this stub.</p></body></html>"
    )
