"""Production environment checks (the cutover runbook's `verify_prod_env`).

Each check returns PASS or FAIL with one line of detail; an open, in-date waiver turns a FAIL into
WAIVED. A high-risk waiver past its deadline without escalation is itself a FAIL (the onboarding
pack's red line).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.db import connection
from django.utils import timezone

from .models import Waiver

TEST_KEY_MARKERS = ("test", "local", "stub", "insecure", "demo", "example")
# Values published in documentation (Adyen's HMAC example key): never a production secret.
PUBLISHED_VALUES = {"44782DEF547AAA06C910C43932B1EB0C71FC68D9D0C057550C48EC2ACF6BA056"}


@dataclass(frozen=True)
class CheckResult:
    name: str
    status: str  # PASS, FAIL, WAIVED
    detail: str

    def line(self) -> str:
        return f"{self.status:<6} {self.name}: {self.detail}"


def _looks_like_test_value(value: str) -> bool:
    lowered = value.lower()
    return not value or value.upper() in PUBLISHED_VALUES or any(marker in lowered for marker in TEST_KEY_MARKERS)


def _secret(name: str) -> tuple[bool, str]:
    value = str(getattr(settings, name, "") or "")
    if not value:
        return False, f"{name} is not set"
    if _looks_like_test_value(value):
        return False, f"{name} looks like a test or development value"
    return True, f"{name} is set"


def check_debug() -> tuple[bool, str]:
    return (not settings.DEBUG, "DEBUG is off" if not settings.DEBUG else "DEBUG is on")


def check_secret_key() -> tuple[bool, str]:
    ok, _ = _secret("SECRET_KEY")
    return ok and len(settings.SECRET_KEY) >= 40, "SECRET_KEY is long and not a development value" if ok and len(
        settings.SECRET_KEY) >= 40 else "SECRET_KEY is missing, short or a development value"


def check_allowed_hosts() -> tuple[bool, str]:
    hosts = list(settings.ALLOWED_HOSTS)
    bad = [h for h in hosts if h in ("*", "localhost", "127.0.0.1", "testserver")]
    return (bool(hosts) and not bad, f"ALLOWED_HOSTS={hosts}" + (f" (not for production: {bad})" if bad else ""))


def check_cors() -> tuple[bool, str]:
    origins = list(getattr(settings, "CORS_ALLOWED_ORIGINS", []))
    wildcard = getattr(settings, "CORS_ALLOW_ALL_ORIGINS", False) or "*" in origins
    return (not wildcard, "CORS restricted" if not wildcard else "CORS allows every origin")


def check_database() -> tuple[bool, str]:
    return (connection.vendor == "postgresql", f"database is {connection.vendor}")


def check_broker() -> tuple[bool, str]:
    url = str(settings.CELERY_BROKER_URL)
    return (url.startswith(("redis://", "rediss://")), f"broker is {url.split('://')[0]}://")


def check_psp_keys() -> tuple[bool, str]:
    failures = [d for ok, d in (_secret("STRIPE_API_KEY"), _secret("ADYEN_API_KEY")) if not ok]
    return (not failures, "; ".join(failures) or "PSP API keys set and live")


def check_webhook_secrets() -> tuple[bool, str]:
    names = ("STRIPE_WEBHOOK_SECRET", "ADYEN_HMAC_KEY", "CUSTODY_WEBHOOK_KEY")
    failures = [d for ok, d in (_secret(n) for n in names) if not ok]
    return (not failures, "; ".join(failures) or "webhook secrets set")


def check_psp_endpoints() -> tuple[bool, str]:
    overridden = [n for n in ("STRIPE_API_BASE", "ADYEN_API_BASE") if getattr(settings, n, "")]
    return (not overridden, "PSP SDKs talk to the real PSPs" if not overridden else f"overridden: {overridden}")


def check_simulation_off() -> tuple[bool, str]:
    on = [n for n in ("SIMULATION_ENABLED", "BOOTSTRAP_ENABLED") if getattr(settings, n, False)]
    return (not on, "simulation and bootstrap are off" if not on else f"on: {on}")


def check_https() -> tuple[bool, str]:
    secure = getattr(settings, "SECURE_SSL_REDIRECT", False) and getattr(settings, "SESSION_COOKIE_SECURE", False)
    return (bool(secure), "HTTPS redirect and secure cookies on" if secure else "HTTPS redirect or secure cookies off")


def check_overdue_waivers() -> tuple[bool, str]:
    overdue = Waiver.objects.filter(
        risk=Waiver.Risk.HIGH, closed_at__isnull=True, escalated_at__isnull=True, deadline__lt=timezone.now()
    )
    names = [f"{w.check_name} ({w.ticket})" for w in overdue]
    return (not names, "no high-risk waiver past its deadline unescalated" if not names else f"overdue: {names}")


CHECKS: list[tuple[str, Callable[[], tuple[bool, str]]]] = [
    ("debug_off", check_debug),
    ("secret_key", check_secret_key),
    ("allowed_hosts", check_allowed_hosts),
    ("cors_restricted", check_cors),
    ("database_postgresql", check_database),
    ("broker_redis", check_broker),
    ("psp_keys_live", check_psp_keys),
    ("webhook_secrets", check_webhook_secrets),
    ("psp_endpoints_real", check_psp_endpoints),
    ("simulation_off", check_simulation_off),
    ("https", check_https),
    ("waivers_in_date", check_overdue_waivers),
]


def verify_prod_env() -> list[CheckResult]:
    """Run every check; a FAIL with an open, in-date waiver for that check is WAIVED."""
    now = timezone.now()
    results = []
    for name, check in CHECKS:
        ok, detail = check()
        if ok:
            results.append(CheckResult(name, "PASS", detail))
            continue
        waiver = Waiver.objects.filter(check_name=name, closed_at__isnull=True, deadline__gte=now).first()
        if waiver and name != "waivers_in_date":
            results.append(CheckResult(name, "WAIVED", f"{detail} (waived by {waiver.ticket} until {waiver.deadline:%Y-%m-%d})"))
        else:
            results.append(CheckResult(name, "FAIL", detail))
    return results
