"""Production environment checks (the cutover runbook's `verify_prod_env`).

Each check returns PASS or FAIL with one line of detail; an open, in-date waiver turns a FAIL into
WAIVED. A high-risk waiver past its deadline without escalation is itself a FAIL (the onboarding
pack's red line). The same rules are Django system checks tagged `deploy` (`ops/checks.py`), so
`manage.py check --deploy` refuses an unsafe production configuration too (without waivers).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import DatabaseError, connection
from django.utils import timezone

from .models import Waiver

TEST_KEY_MARKERS = ("test", "local", "stub", "insecure", "demo", "example")
# Values published in documentation (Adyen's HMAC example key): never a production secret.
PUBLISHED_VALUES = {"44782DEF547AAA06C910C43932B1EB0C71FC68D9D0C057550C48EC2ACF6BA056"}
MIN_SECRET_KEY_LENGTH = 50  # Django's own deploy check (security.W009) asks for 50 and 5 distinct characters
MIN_SECRET_KEY_UNIQUE_CHARS = 5
MIN_HSTS_SECONDS = 365 * 24 * 3600
MIN_METRICS_TOKEN_LENGTH = 32
MAX_LOGIN_FAILURE_LIMIT = 10
MAX_LOGIN_ACCOUNT_FAILURE_LIMIT = 50
STRIPE_LIVE_KEY_PREFIXES = ("sk_live_", "rk_live_")


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
    value = str(getattr(settings, name))
    if not value:
        return False, f"{name} is not set"
    if _looks_like_test_value(value):
        return False, f"{name} looks like a test or development value"
    return True, f"{name} is set"


def check_debug() -> tuple[bool, str]:
    return (not settings.DEBUG, "DEBUG is off" if not settings.DEBUG else "DEBUG is on")


def check_secret_key() -> tuple[bool, str]:
    key = str(settings.SECRET_KEY)
    ok, _ = _secret("SECRET_KEY")
    strong = ok and len(key) >= MIN_SECRET_KEY_LENGTH and len(set(key)) >= MIN_SECRET_KEY_UNIQUE_CHARS
    return strong, (
        "SECRET_KEY is long, varied and not a development value"
        if strong
        else f"SECRET_KEY is missing, a development value, shorter than {MIN_SECRET_KEY_LENGTH} "
        f"characters or with fewer than {MIN_SECRET_KEY_UNIQUE_CHARS} distinct ones"
    )


def check_allowed_hosts() -> tuple[bool, str]:
    hosts = list(settings.ALLOWED_HOSTS)
    bad = [h for h in hosts if h in ("*", ".", "localhost", "127.0.0.1", "testserver") or h.startswith("*")]
    return (bool(hosts) and not bad, f"ALLOWED_HOSTS={hosts}" + (f" (not for production: {bad})" if bad else ""))


def check_cors() -> tuple[bool, str]:
    origins = list(settings.CORS_ALLOWED_ORIGINS)
    if settings.CORS_ALLOW_ALL_ORIGINS or "*" in origins:
        return False, "CORS allows every origin"
    insecure = [o for o in origins if not str(o).startswith("https://")]
    if insecure:
        return False, f"CORS allows origins that are not https: {insecure}"
    if settings.CORS_ALLOWED_ORIGIN_REGEXES:
        return False, "CORS_ALLOWED_ORIGIN_REGEXES is set; list the origins in CORS_ALLOWED_ORIGINS"
    return True, f"CORS restricted to {origins or 'no origin'}"


def check_database() -> tuple[bool, str]:
    return (connection.vendor == "postgresql", f"database is {connection.vendor}")


def database_role_problems(cursor: Any) -> tuple[str, list[str]]:
    """The role this connection acts as, and what makes it unfit to serve production (empty: nothing).

    A superuser can do anything (switch every trigger off with `session_replication_role`, rewrite the
    ledger); an owner of the tables can drop their triggers and grant itself anything. Both the role
    logged in (`session_user`) and the role acting (`current_user`) count: a session logged in as a
    superuser can always go back to it.
    """
    cursor.execute("SELECT session_user, current_user")
    session_role, current_role = cursor.fetchone()
    problems: list[str] = []
    cursor.execute(
        "SELECT rolname FROM pg_roles WHERE rolname IN (%s, %s) AND (rolsuper OR rolbypassrls) ORDER BY rolname",
        [session_role, current_role],
    )
    problems.extend(f"{name} is a superuser (or bypasses row security)" for (name,) in cursor.fetchall())
    cursor.execute(
        "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p', 'v', 'm')"
        " AND (pg_has_role(session_user, c.relowner, 'MEMBER') OR pg_has_role(current_user, c.relowner, 'MEMBER'))"
    )
    (owned,) = cursor.fetchone()
    if owned and not problems:  # a superuser is a member of every role: said once above
        problems.append(f"{current_role} owns {owned} of the project's tables (it is the migrating owner role)")
    role = session_role if session_role == current_role else f"{session_role} (acting as {current_role})"
    return role, problems


def check_database_role() -> tuple[bool, str]:
    """The role the processes connect as: never a superuser, never the tables' owner (docs/deploy.md)."""
    try:
        with connection.cursor() as cursor:
            role, problems = database_role_problems(cursor)
    except DatabaseError as exc:
        return False, f"cannot read the database role: {str(exc).strip().splitlines()[0]}"
    if problems:
        return False, f"connected as {role}: " + "; ".join(problems)
    expected = str(settings.DB_APP_ROLE)
    note = "" if role == expected else f" (DB_APP_ROLE is {expected})"
    return True, f"connected as {role}: no superuser, owns no table{note}"


def check_broker() -> tuple[bool, str]:
    url = str(settings.CELERY_BROKER_URL)
    return (url.startswith(("redis://", "rediss://")), f"broker is {url.split('://')[0]}://")


def check_psp_keys() -> tuple[bool, str]:
    failures = [d for ok, d in (_secret("STRIPE_API_KEY"), _secret("ADYEN_API_KEY")) if not ok]
    return (not failures, "; ".join(failures) or "PSP API keys set and live")


def check_stripe_live() -> tuple[bool, str]:
    mode, key = str(settings.STRIPE_KEY_MODE), str(settings.STRIPE_API_KEY)
    if mode != "live":
        return False, f"STRIPE_KEY_MODE is {mode!r}, not 'live'"
    if not key.startswith(STRIPE_LIVE_KEY_PREFIXES):
        return False, "STRIPE_API_KEY is not a live key (sk_live_ or rk_live_)"
    return True, "Stripe key mode live, with a live key"


def check_adyen_live() -> tuple[bool, str]:
    environment, prefix = str(settings.ADYEN_ENVIRONMENT), str(settings.ADYEN_LIVE_ENDPOINT_PREFIX)
    if environment != "live":
        return False, f"ADYEN_ENVIRONMENT is {environment!r}: the SDK would talk to Adyen's test platform"
    if not prefix:
        return False, "ADYEN_LIVE_ENDPOINT_PREFIX is not set (Adyen's live Checkout URLs need it)"
    return True, f"Adyen live platform, endpoint prefix {prefix}"


def check_webhook_secrets() -> tuple[bool, str]:
    names = ("STRIPE_WEBHOOK_SECRET", "ADYEN_HMAC_KEY", "CUSTODY_WEBHOOK_KEY")
    failures = [d for ok, d in (_secret(n) for n in names) if not ok]
    return (not failures, "; ".join(failures) or "webhook secrets set")


LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def _points_at_local_stub(base: str) -> bool:
    """Whether an SDK base URL is this machine (the local PSP stub), not a PSP."""
    from urllib.parse import urlsplit

    return (urlsplit(base).hostname or "") in LOOPBACK_HOSTS


def check_psp_endpoints() -> tuple[bool, str]:
    """The SDKs must talk to the real PSPs: any base URL set fails, and when it is the local stub (the
    development settings' default, `config/settings/local.py`) the detail says so."""
    names = ("STRIPE_API_BASE", "ADYEN_API_BASE")
    bases = {n: str(getattr(settings, n)) for n in names if getattr(settings, n)}
    if not bases:
        return True, "PSP SDKs talk to the real PSPs"
    if not all(_points_at_local_stub(base) for base in bases.values()):
        return False, f"overridden: {list(bases)}"
    where = ", ".join(f"{name}={base}" for name, base in bases.items())
    context = " (the development default)" if settings.ENVIRONMENT == "development" else ""
    unset = "".join(f"; {n} is not set: that SDK talks to the real PSP" for n in names if n not in bases)
    return False, f"PSP SDKs point at the local PSP stub{context}: {where}{unset}"


def check_simulation_off() -> tuple[bool, str]:
    on = [n for n in ("SIMULATION_ENABLED", "BOOTSTRAP_ENABLED") if getattr(settings, n)]
    return (not on, "simulation and bootstrap are off" if not on else f"on: {on}")


def check_https() -> tuple[bool, str]:
    secure = settings.SECURE_SSL_REDIRECT and settings.SESSION_COOKIE_SECURE and settings.CSRF_COOKIE_SECURE
    return (bool(secure), "HTTPS redirect and secure cookies on" if secure else "HTTPS redirect or secure cookies off")


def check_hsts() -> tuple[bool, str]:
    seconds = int(settings.SECURE_HSTS_SECONDS or 0)
    ok = seconds >= MIN_HSTS_SECONDS
    return ok, f"HSTS {seconds} s" + ("" if ok else f" (at least {MIN_HSTS_SECONDS} s, a year)")


def check_metrics_private() -> tuple[bool, str]:
    token, ips = str(settings.METRICS_TOKEN), list(settings.METRICS_ALLOWED_IPS)
    if settings.METRICS_PUBLIC:
        return False, "METRICS_PUBLIC is on: anyone can read /metrics"
    if not token and not ips:
        return False, "neither METRICS_TOKEN nor METRICS_ALLOWED_IPS is set: no scraper can read /metrics"
    if token and (len(token) < MIN_METRICS_TOKEN_LENGTH or _looks_like_test_value(token)):
        return False, f"METRICS_TOKEN is shorter than {MIN_METRICS_TOKEN_LENGTH} characters or a test value"
    return True, "metrics need " + " or ".join(
        (["the bearer token"] if token else []) + ([f"an address in {ips}"] if ips else [])
    )


def check_login_protection() -> tuple[bool, str]:
    pair, account = int(settings.AXES_FAILURE_LIMIT), int(settings.LOGIN_ACCOUNT_FAILURE_LIMIT)
    ok = bool(settings.AXES_ENABLED) and pair <= MAX_LOGIN_FAILURE_LIMIT and account <= MAX_LOGIN_ACCOUNT_FAILURE_LIMIT
    return ok, (
        f"logins lock after {pair} failures from one address, {account} over every address"
        if ok
        else f"login protection off or its limits above {MAX_LOGIN_FAILURE_LIMIT} per address "
        f"or {MAX_LOGIN_ACCOUNT_FAILURE_LIMIT} per account"
    )


def check_overdue_waivers() -> tuple[bool, str]:
    overdue = Waiver.objects.filter(
        risk=Waiver.Risk.HIGH, closed_at__isnull=True, escalated_at__isnull=True, deadline__lt=timezone.now()
    )
    names = [f"{w.check_name} ({w.ticket})" for w in overdue]
    return (not names, "no high-risk waiver past its deadline unescalated" if not names else f"overdue: {names}")


def check_django_security() -> tuple[bool, str]:
    """Django's own deployment checks (`security.*`), as `manage.py check --deploy` runs them."""
    from django.core.checks import WARNING, run_checks

    messages = [
        m
        for m in run_checks(tags=["security"], include_deployment_checks=True)
        if m.level >= WARNING and not m.is_silenced()
    ]
    return (
        not messages,
        "Django's security checks pass"
        if not messages
        else "; ".join(f"{m.id}: {str(m.msg).split('.')[0]}" for m in messages),
    )


# (name, check, part of `manage.py check --deploy`). The last two are not system checks: one reads
# the waiver table, the other is Django's own deployment checks, which `check --deploy` runs itself.
RULES: list[tuple[str, Callable[[], tuple[bool, str]], bool]] = [
    ("debug_off", check_debug, True),
    ("secret_key", check_secret_key, True),
    ("allowed_hosts", check_allowed_hosts, True),
    ("cors_restricted", check_cors, True),
    ("database_postgresql", check_database, True),
    ("broker_redis", check_broker, True),
    ("psp_keys_live", check_psp_keys, True),
    ("stripe_live", check_stripe_live, True),
    ("adyen_live", check_adyen_live, True),
    ("webhook_secrets", check_webhook_secrets, True),
    ("psp_endpoints_real", check_psp_endpoints, True),
    ("simulation_off", check_simulation_off, True),
    ("https", check_https, True),
    ("hsts", check_hsts, True),
    ("metrics_private", check_metrics_private, True),
    ("login_protection", check_login_protection, True),
    ("database_role", check_database_role, True),
    ("django_security", check_django_security, False),
    ("waivers_in_date", check_overdue_waivers, False),
]
CHECKS: list[tuple[str, Callable[[], tuple[bool, str]]]] = [(name, check) for name, check, _ in RULES]
SYSTEM_CHECKS: list[tuple[str, Callable[[], tuple[bool, str]]]] = [
    (name, check) for name, check, system in RULES if system
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
            results.append(
                CheckResult(name, "WAIVED", f"{detail} (waived by {waiver.ticket} until {waiver.deadline:%Y-%m-%d})")
            )
        else:
            results.append(CheckResult(name, "FAIL", detail))
    return results
