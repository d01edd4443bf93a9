"""Settings shared by every environment.

Configuration comes from the environment (12-factor, django-environ). Money settings
(fees, limits) live here with their defaults; secrets have defaults only in local/test.
"""

from datetime import timedelta
from pathlib import Path

import environ
from celery.schedules import crontab

BASE_DIR = Path(__file__).resolve().parent.parent.parent
RUN_DIR = BASE_DIR / ".run"

env = environ.Env()

DEBUG = env.bool("DJANGO_DEBUG", default=False)
ENVIRONMENT = env("ENVIRONMENT", default="development")
SECRET_KEY = env("DJANGO_SECRET_KEY", default="")  # set by each environment; production requires it
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "testserver"])

# --- Apps -------------------------------------------------------------------------------
DJANGO_APPS = [
    "ops.console.apps.ConsoleAdminConfig",  # django.contrib.admin with the operator console as its home
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
]
THIRD_PARTY_APPS = [
    "rest_framework",
    "knox",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_fsm",
    "auditlog",
    "django_prometheus",
]
LOCAL_APPS = [
    "accounts",
    "ledger",
    "ops",
    "webhooks",
    "payouts",
    "rounds",
    "chain",
]
INSTALLED_APPS = DJANGO_APPS + THIRD_PARTY_APPS + LOCAL_APPS

MIDDLEWARE = [
    "ops.middleware.CorrelationIdMiddleware",
    "ops.middleware.RequestMetricsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "auditlog.middleware.AuditlogMiddleware",
    "ops.middleware.MaintenanceModeMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
AUTH_USER_MODEL = "accounts.User"
LOGIN_URL = "/admin/login/"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -----------------------------------------------------------------------------
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
DATABASES["default"]["ATOMIC_REQUESTS"] = False
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"

# --- API ----------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "knox.auth.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "ops.errors.problem_exception_handler",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 50,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Back office API",
    "DESCRIPTION": "Wallet, deposits, withdrawals and the daily Up/Down round.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",  # served from this site: no CDN
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}
REST_KNOX = {
    "TOKEN_TTL": timedelta(hours=env.int("API_TOKEN_TTL_HOURS", default=12)),
    "AUTO_REFRESH": False,
    "TOKEN_LIMIT_PER_USER": 20,
}
IDEMPOTENCY_IN_PROGRESS_TIMEOUT = timedelta(seconds=env.int("IDEMPOTENCY_IN_PROGRESS_TIMEOUT_S", default=300))

# --- Celery -------------------------------------------------------------------------------
REDIS_URL = env("REDIS_URL", default="")
if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
    CELERY_BROKER_TRANSPORT_OPTIONS: dict = {}
else:
    CELERY_BROKER_URL = "filesystem://"
    _broker_dir = RUN_DIR / "broker"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "out"),
        "data_folder_out": str(_broker_dir / "out"),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }
CELERY_TIMEZONE = "UTC"
CELERY_ENABLE_UTC = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
CELERY_BEAT_SCHEDULE_FILENAME = str(RUN_DIR / "celerybeat-schedule")
CELERY_BEAT_SCHEDULE = {
    "ledger-reconciliation": {"task": "ledger.tasks.reconcile_ledger", "schedule": crontab(minute="*/5")},
    "ops-stuck-finance-jobs": {"task": "payouts.tasks.detect_stuck_finance_jobs", "schedule": crontab(minute="*/5")},
    "rounds-tick": {"task": "rounds.tasks.rounds_tick", "schedule": crontab(minute="*")},
    # Every 20 s for payouts waiting 30 s (PAYOUT_REQUEUE_AFTER_S): resumed within a minute of the broker's return.
    "payouts-requeue": {"task": "payouts.tasks.requeue_payouts", "schedule": timedelta(seconds=20)},
    "payouts-reconcile": {"task": "payouts.tasks.reconcile_payouts", "schedule": crontab(minute="*/2")},
    "ops-escalate-waivers": {"task": "ops.tasks.escalate_overdue_waivers", "schedule": crontab(minute=7)},
    # Every 10 s: after a broker outage, events stored meanwhile are processed within a minute of its return.
    "webhooks-retry-pending": {"task": "webhooks.tasks.retry_stale_events", "schedule": timedelta(seconds=10)},
    "chain-track-payouts": {"task": "chain.tasks.track_chain_payouts", "schedule": crontab(minute="*")},
    "chain-scan-deposits": {"task": "chain.tasks.scan_chain_deposits", "schedule": crontab(minute="*")},
    "chain-wallet-balances": {"task": "chain.tasks.check_hot_wallet", "schedule": crontab(minute="*/5")},
}

# --- Money and product settings ------------------------------------------------------------
DEFAULT_CURRENCY = env("DEFAULT_CURRENCY", default="USDC")
FEE_BPS = env.int("FEE_BPS", default=100)
MIN_STAKE_U = env.int("MIN_STAKE_U", default=1_000_000)
ROUND_CURRENCY = env("ROUND_CURRENCY", default="USDC")
ROUND_INSTRUMENT = env("ROUND_INSTRUMENT", default="NASDAQ-COMPOSITE")
ORACLE_SOURCES = env.json("ORACLE_SOURCES", default=[])
ORACLE_DEADLINE_MINUTES = env.int("ORACLE_DEADLINE_MINUTES", default=60)
# Manual money decisions above these amounts (major units, per currency) need two operators; a
# currency missing here needs two for every decision. Validated at start-up (ops.approvals).
FOUR_EYES_THRESHOLDS = env.json(
    "FOUR_EYES_THRESHOLDS", default={"USD": "10000.00", "EUR": "10000.00", "USDC": "10000"}
)
SIMULATION_ENABLED = env.bool("SIMULATION_ENABLED", default=False)
BOOTSTRAP_ENABLED = env.bool("BOOTSTRAP_ENABLED", default=False)

# PSPs. The stub (webhooks.stub) stands in for them outside production.
STRIPE_API_KEY = env("STRIPE_API_KEY", default="")
STRIPE_API_BASE = env("STRIPE_API_BASE", default="")
STRIPE_WEBHOOK_SECRET = env("STRIPE_WEBHOOK_SECRET", default="")
ADYEN_API_KEY = env("ADYEN_API_KEY", default="")
ADYEN_API_BASE = env("ADYEN_API_BASE", default="")
ADYEN_MERCHANT_ACCOUNT = env("ADYEN_MERCHANT_ACCOUNT", default="")
ADYEN_BALANCE_ACCOUNT_ID = env("ADYEN_BALANCE_ACCOUNT_ID", default="")
ADYEN_HMAC_KEY = env("ADYEN_HMAC_KEY", default="")
CUSTODY_WEBHOOK_KEY = env("CUSTODY_WEBHOOK_KEY", default="")
WEBHOOK_MAX_BODY_BYTES = env.int("WEBHOOK_MAX_BODY_BYTES", default=256 * 1024)
WEBHOOK_MAX_ATTEMPTS = env.int("WEBHOOK_MAX_ATTEMPTS", default=5)
WEBHOOK_STALE_AFTER_S = env.int("WEBHOOK_STALE_AFTER_S", default=15)
# Stuck work and PSP reconciliation (minutes): see detect_stuck_finance_jobs and payouts/reconciliation.py.
STUCK_REQUESTED_AFTER_MINUTES = env.float("STUCK_REQUESTED_AFTER_MINUTES", default=24 * 60)
STUCK_APPROVED_AFTER_MINUTES = env.float("STUCK_APPROVED_AFTER_MINUTES", default=5)
STUCK_IN_FLIGHT_AFTER_MINUTES = env.float("STUCK_IN_FLIGHT_AFTER_MINUTES", default=5)
STUCK_UNCONFIRMED_AFTER_MINUTES = env.float("STUCK_UNCONFIRMED_AFTER_MINUTES", default=24 * 60)
STUCK_WEBHOOK_AFTER_MINUTES = env.float("STUCK_WEBHOOK_AFTER_MINUTES", default=5)
STUCK_ROUND_AFTER_MINUTES = env.float("STUCK_ROUND_AFTER_MINUTES", default=90)
PAYOUT_RECONCILE_AFTER_MINUTES = env.float("PAYOUT_RECONCILE_AFTER_MINUTES", default=5)
PAYOUT_MANUAL_RESOLVE_AFTER_MINUTES = env.float("PAYOUT_MANUAL_RESOLVE_AFTER_MINUTES", default=24 * 60)
DEPOSIT_PROVIDER_TIMEOUT_S = env.float("DEPOSIT_PROVIDER_TIMEOUT_S", default=10.0)
DEPOSIT_RETURN_URL = env("DEPOSIT_RETURN_URL", default="http://localhost:8000/deposits/return")

# USDC on chain (app `chain`). The hot wallet's key is read from CHAIN_HOT_WALLET_KEY in the process
# environment at signing time only; it is never a setting, never logged, never stored.
CHAIN_RPC_URL = env("CHAIN_RPC_URL", default="")
CHAIN_ID = env.int("CHAIN_ID", default=0)
CHAIN_USDC_ADDRESS = env("CHAIN_USDC_ADDRESS", default="")
CHAIN_CONFIRMATIONS = env.int("CHAIN_CONFIRMATIONS", default=12)
CHAIN_MAX_FEE_PER_GAS_WEI = env.int("CHAIN_MAX_FEE_PER_GAS_WEI", default=200 * 10**9)
CHAIN_PRIORITY_FEE_WEI = env.int("CHAIN_PRIORITY_FEE_WEI", default=2 * 10**9)
CHAIN_GAS_LIMIT = env.int("CHAIN_GAS_LIMIT", default=100_000)
CHAIN_RPC_TIMEOUT_S = env.float("CHAIN_RPC_TIMEOUT_S", default=10.0)
CHAIN_REORG_WATCH_BLOCKS = env.int("CHAIN_REORG_WATCH_BLOCKS", default=64)
CHAIN_HOT_WALLET_ADDRESS = env("CHAIN_HOT_WALLET_ADDRESS", default="")  # for metrics where no key is held
CHAIN_DEPOSIT_XPUB = env("CHAIN_DEPOSIT_XPUB", default="")  # public only: deposit keys live offline
CHAIN_DEPOSIT_START_BLOCK = env.int("CHAIN_DEPOSIT_START_BLOCK", default=0)
CHAIN_LOW_TOKEN_BALANCE_U = env.int("CHAIN_LOW_TOKEN_BALANCE_U", default=1_000 * 10**6)
CHAIN_LOW_GAS_BALANCE_WEI = env.int("CHAIN_LOW_GAS_BALANCE_WEI", default=5 * 10**16)
CHAIN_STUCK_UNCONFIRMED_AFTER_MINUTES = env.float("CHAIN_STUCK_UNCONFIRMED_AFTER_MINUTES", default=30)

# --- Logging ------------------------------------------------------------------------------
LOG_LEVEL = env("LOG_LEVEL", default="INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"correlation": {"()": "ops.logging.CorrelationIdFilter"}},
    "formatters": {
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s %(correlation_id)s",
            "rename_fields": {"asctime": "ts", "levelname": "level", "name": "logger"},
        },
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "json", "filters": ["correlation"]},
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        "celery": {"level": "INFO"},
    },
}
