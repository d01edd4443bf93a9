"""`verify_prod_env`'s `psp_endpoints_real`: it names the local PSP stub when the SDKs point at it (the development
settings' default, docs/ops/local_psp.md), and any base URL still fails it, in production above all."""

from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from ops.prod_env import check_psp_endpoints

pytestmark = pytest.mark.django_db
STUB = "http://127.0.0.1:12111"


def psp_endpoints_line(settings: Any) -> str:
    out = StringIO()
    with pytest.raises(CommandError, match="verify_prod_env: FAIL"):  # a development configuration fails it
        call_command("verify_prod_env", stdout=out)
    (line,) = [line for line in out.getvalue().splitlines() if "psp_endpoints_real" in line]
    return line


def test_development_says_the_sdks_point_at_the_local_stub(settings: Any) -> None:
    settings.ENVIRONMENT = "development"
    settings.STRIPE_API_BASE = settings.ADYEN_API_BASE = STUB

    assert psp_endpoints_line(settings) == (
        "FAIL   psp_endpoints_real: PSP SDKs point at the local PSP stub (the development default): "
        f"STRIPE_API_BASE={STUB}, ADYEN_API_BASE={STUB}"
    )


def test_one_sdk_left_on_the_real_psp_is_named(settings: Any) -> None:
    settings.ENVIRONMENT = "development"
    settings.STRIPE_API_BASE, settings.ADYEN_API_BASE = STUB, ""

    ok, detail = check_psp_endpoints()

    assert not ok
    assert detail.endswith(f"STRIPE_API_BASE={STUB}; ADYEN_API_BASE is not set: that SDK talks to the real PSP")


@pytest.mark.parametrize(
    ("stripe_base", "adyen_base", "detail"),
    [
        (STUB, STUB, f"PSP SDKs point at the local PSP stub: STRIPE_API_BASE={STUB}, ADYEN_API_BASE={STUB}"),
        ("https://psp-proxy.example.com", "", "overridden: ['STRIPE_API_BASE']"),
        (STUB, "https://psp-proxy.example.com", "overridden: ['STRIPE_API_BASE', 'ADYEN_API_BASE']"),
        ("", "", "PSP SDKs talk to the real PSPs"),
    ],
)
def test_production_verdict_is_unchanged(settings: Any, stripe_base: str, adyen_base: str, detail: str) -> None:
    settings.ENVIRONMENT = "production"
    settings.STRIPE_API_BASE, settings.ADYEN_API_BASE = stripe_base, adyen_base

    assert check_psp_endpoints() == (not stripe_base and not adyen_base, detail)
