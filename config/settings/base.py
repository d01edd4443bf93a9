"""Settings shared by every environment.

Configuration comes from the environment (12-factor, django-environ). Money settings
(fees, limits) live here with their defaults; secrets have defaults only in local/test.
"""

from datetime import timedelta
from pathlib import Path

import environ
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured
from kombu import Queue

BASE_DIR = Path(__file__).resolve().parent.parent.parent

env = environ.Env()
# A `.env` file beside manage.py is read when present; real environment variables win over it.
if (BASE_DIR / ".env").is_file():
    environ.Env.read_env(BASE_DIR / ".env", overwrite=False)
# `make run`'s working files (file broker, beat schedule, demo credentials); a second stack (a test's) sets its own.
RUN_DIR = Path(env("RUN_DIR", default=str(BASE_DIR / ".run")))

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
    "corsheaders",
    "axes",
    "csp",
]
LOCAL_APPS = [
    "accounts",
    "ledger",
    "ops",
    "webhooks",
    "payouts",
    "rounds",
    "payouts.chain",
]
INSTALLED_APPS = DJANGO_APPS + THIRD_PARTY_APPS + LOCAL_APPS

MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "ops.middleware.CorrelationIdMiddleware",
    "ops.middleware.RequestMetricsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",  # /static/ (the admin's CSS and JS), before everything else
    "corsheaders.middleware.CorsMiddleware",
    "csp.middleware.CSPMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "ops.front_door.NoStoreForAuthenticatedApiMiddleware",
    "ops.auditlog_setup.AuditlogMiddleware",
    "ops.middleware.MaintenanceModeMiddleware",
    "ops.db_router.AdminListsOnReplicaMiddleware",
    "axes.middleware.AxesMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
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
# django-prometheus wraps the database backend: queries, errors and new connections per alias
# (`django_db_*`), the house manual's connection KPI.
PROMETHEUS_DB_ENGINES = {
    "django.db.backends.postgresql": "django_prometheus.db.backends.postgresql",
}


def instrumented_database(config: dict) -> dict:
    """Return a DATABASES entry with its ENGINE swapped for django-prometheus's wrapper (PostgreSQL only)."""
    config = dict(config)
    if config["ENGINE"] not in PROMETHEUS_DB_ENGINES:
        raise ImproperlyConfigured(f"The database must be PostgreSQL (postgres://...), not {config['ENGINE']}.")
    config["ENGINE"] = PROMETHEUS_DB_ENGINES.get(config["ENGINE"], config["ENGINE"])
    config["ATOMIC_REQUESTS"] = False
    return config


# PostgreSQL only, named by DATABASE_URL: `make run` and `make test` start the embedded server
# (ops/embedded_pg.py) and set it when it is unset; production requires it (production.py). Unset, the
# settings still load (mypy, `makemigrations --check`), but any query fails: Django's dummy backend.
DATABASES = {
    "default": instrumented_database(env.db("DATABASE_URL"))
    if env.str("DATABASE_URL", default="")
    else {"ENGINE": "django.db.backends.dummy"}
}
# The role web, workers and beat connect as (DATABASE_URL's user): no superuser, owns nothing, SELECT only on
# the ledger's tables. Migrations run as the tables' owner (DATABASE_OWNER_URL), then `setup_db_roles`.
DB_APP_ROLE = env("DB_APP_ROLE", default="backoffice_app")
# A streaming replica for reports, TVL, metrics gauges and admin lists (ops/db_router.py, docs/ops/scaling.md).
DB_READONLY_ENDPOINT = env("DB_READONLY_ENDPOINT", default="")
DB_READONLY_MAX_LAG_S = env.float("DB_READONLY_MAX_LAG_S", default=5.0)
DB_READONLY_CHECK_INTERVAL_S = env.float("DB_READONLY_CHECK_INTERVAL_S", default=5.0)
READONLY_DATABASE: dict | None = None
if DB_READONLY_ENDPOINT:
    READONLY_DATABASE = instrumented_database(env.db_url_config(DB_READONLY_ENDPOINT))
    READONLY_DATABASE.setdefault("OPTIONS", {})["connect_timeout"] = 2  # an unreachable replica: fall back fast
    READONLY_DATABASE["TEST"] = {"MIRROR": "default"}
    DATABASES["replica"] = READONLY_DATABASE
DATABASE_ROUTERS = ["ops.db_router.ReplicaRouter"]
# The ledger's posting calls as prepared statements (ledger/db_calls.py): unset, prepared unless the database
# entry sets DISABLE_SERVER_SIDE_CURSORS (a transaction-mode pooler in front); true with PgBouncer >= 1.21 and
# max_prepared_statements > 0; false with an older pooler, or one with max_prepared_statements = 0.
LEDGER_PREPARED_STATEMENTS: bool | None = env.bool("LEDGER_PREPARED_STATEMENTS", default=None)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Cache: local memory per process, counted by django-prometheus (`django_cache_*`).
CACHES = {"default": {"BACKEND": "django_prometheus.cache.backends.locmem.LocMemCache"}}
# Per-process caches of hot reads, each served for at most this many seconds (ops/ttl.py; 0 turns one off):
# the API token and its user (a deleted or expired token, a deactivated user is refused within the bound),
# the maintenance switch as the request gate reads it, an OPEN round's public answer (its pools and status).
AUTH_TOKEN_CACHE_S = env.float("AUTH_TOKEN_CACHE_S", default=1.0)
SWITCH_CACHE_S = env.float("SWITCH_CACHE_S", default=1.0)
ROUND_OPEN_CACHE_S = env.float("ROUND_OPEN_CACHE_S", default=1.0)

# Passwords: Django's validators; operators (staff) need at least 12 characters; the demo passwords are
# refused outside ENVIRONMENT=development.
AUTH_PASSWORD_VALIDATORS = [
    {
        "NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator",
        "OPTIONS": {"user_attributes": ["email"]},
    },
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 8}},
    {"NAME": "accounts.password_validation.StaffMinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "accounts.password_validation.NotDemoPasswordValidator"},  # outside ENVIRONMENT=development
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# --- Login protection (django-axes) ----------------------------------------------------------
# Lock an account for one client address after LOGIN_FAILURE_LIMIT wrong passwords, and for every
# address after LOGIN_ACCOUNT_FAILURE_LIMIT wrong passwords summed over all addresses (a spread
# attack), on the API login and the admin login alike (accounts/login_protection.py); the lockout
# ends after LOGIN_LOCKOUT_MINUTES or when an operator runs `unlock_login`. Lockouts and unlocks land
# in the audit log; the console lists the current lockouts.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_ENABLED = env.bool("LOGIN_PROTECTION_ENABLED", default=True)
AXES_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", default=5)
LOGIN_ACCOUNT_FAILURE_LIMIT = env.int("LOGIN_ACCOUNT_FAILURE_LIMIT", default=20)
AXES_HANDLER = "accounts.login_protection.AccountAwareAxesHandler"
AXES_COOLOFF_TIME = timedelta(minutes=env.int("LOGIN_LOCKOUT_MINUTES", default=30))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_USERNAME_FORM_FIELD = "username"  # the key Django's authenticate() and the admin form use for the email
AXES_USERNAME_CALLABLE = "accounts.login_protection.login_username"
AXES_CLIENT_IP_CALLABLE = "ops.front_door.client_ip"
AXES_RESET_ON_SUCCESS = True
AXES_DISABLE_ACCESS_LOG = True  # no log of successful logins (it would open a session for every API login)
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False  # a fixed lockout; attempts during it do not extend it
AXES_HTTP_RESPONSE_CODE = 429
AXES_LOCKOUT_TEMPLATE = "accounts/locked_out.html"
AXES_VERBOSE = False

# --- Front door: sessions, proxies, CORS, CSP ------------------------------------------------
# Sessions are the operators' (players use tokens): a working day.
SESSION_COOKIE_AGE = env.int("SESSION_COOKIE_AGE_S", default=8 * 3600)
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
# The proxy in front of Django: the header that says the original request was HTTPS
# ("HTTP_X_FORWARDED_PROTO=https"; empty: no proxy is trusted), and how many proxies append
# to X-Forwarded-For (0: the client address is REMOTE_ADDR).
_proxy_ssl_header = env("SECURE_PROXY_SSL_HEADER", default="")
SECURE_PROXY_SSL_HEADER = tuple(_proxy_ssl_header.split("=", 1)) if "=" in _proxy_ssl_header else None
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=0)
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=False)
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=False)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=False)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# HSTS preload is a one-way door (browsers hard-code the domain): off unless asked for.
SILENCED_SYSTEM_CHECKS = [] if SECURE_HSTS_PRELOAD else ["security.W021"]

# CORS (django-cors-headers): no origin is allowed unless listed; only the API is exposed.
CORS_ALLOWED_ORIGINS = env.list("CORS_ALLOWED_ORIGINS", default=[])
CORS_ALLOW_ALL_ORIGINS = False
CORS_ALLOWED_ORIGIN_REGEXES: list[str] = []  # not used: list origins in CORS_ALLOWED_ORIGINS
CORS_ALLOW_CREDENTIALS = False
CORS_URLS_REGEX = r"^/v1/.*$"
CORS_ALLOW_HEADERS = ("accept", "authorization", "content-type", "idempotency-key", "x-request-id")

# Content-Security-Policy (django-csp) on every HTML page: the admin and the API docs load only
# from this site (the Swagger UI is served by drf-spectacular-sidecar; its init script is a file).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        # Styles may be inline (the admin's widgets and the Swagger UI set style attributes); scripts may not.
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "frame-ancestors": ["'none'"],
        "form-action": ["'self'"],
    },
}

# --- Metrics ---------------------------------------------------------------------------------
# `/metrics` answers a scraper that sends `Authorization: Bearer <METRICS_TOKEN>` or comes from an
# address in METRICS_ALLOWED_IPS; with neither configured it is open only where METRICS_PUBLIC is on
# (development and tests; production forces it off).
METRICS_TOKEN = env("METRICS_TOKEN", default="")
METRICS_ALLOWED_IPS = env.list("METRICS_ALLOWED_IPS", default=[])
METRICS_PUBLIC = env.bool("METRICS_PUBLIC", default=True)
# prometheus_client's multiprocess mode (several gunicorn workers): the directory is read from the
# environment by prometheus_client itself before Django starts; it is declared here for the checks.
PROMETHEUS_MULTIPROC_DIR = env("PROMETHEUS_MULTIPROC_DIR", default="")
PROMETHEUS_EXPORT_MIGRATIONS = False

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
# whitenoise serves /static/ from STATIC_ROOT (filled by `collectstatic`) in every process. Production keeps
# the files compressed under content-hashed names (`STORAGES_COLLECTED`), served with a one-year immutable
# cache header; it needs `collectstatic` first (the image runs it at build time). `make run` and the tests
# keep Django's plain storage, which needs no collectstatic (`make run` serves from the apps with DEBUG).
STATIC_ROOT = Path(env("STATIC_ROOT", default=str(BASE_DIR / "staticfiles")))
STORAGES_COLLECTED = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

# --- API ----------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.authentication.ExpiringTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # JSON only: no API view takes a form or a file, and a body offered in three encodings makes generated
    # clients (openapi-python-client) emit code that does not import. A form body is refused with 415.
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
    # drf-spectacular's AutoSchema, with every operation's problem+json refusals documented (ops/schema.py).
    "DEFAULT_SCHEMA_CLASS": "ops.schema.ProblemAutoSchema",
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
    "TOKEN_LIMIT_PER_USER": env.int("API_TOKEN_LIMIT_PER_USER", default=20),
}

# --- Celery -------------------------------------------------------------------------------
REDIS_URL = env("REDIS_URL", default="")
if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
    CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, str | bool] = {}
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
# Beat: any number may run, one schedules (config/beat.py; docs/ops/scaling.md "Beat"). With Redis, the leader
# holds a lock in Redis (celery-redbeat), extended at every pass, at least every CELERY_BEAT_MAX_LOOP_INTERVAL
# seconds; a standby tries to take it as often, so it takes over at most CELERY_REDBEAT_LOCK_TIMEOUT +
# CELERY_BEAT_MAX_LOOP_INTERVAL = 25 s (plus a pass) after the leader's death: under the 30 s asked. The schedule's state (each entry's last run) is in
# Redis too, so no tick is sent twice. Without Redis (`make run`'s file broker) there is one beat, embedded in the
# worker, with its schedule in CELERY_BEAT_SCHEDULE_FILENAME. Production and the tests always have Redis.
LEADER_SCHEDULER = "config.beat:LeaderScheduler"
CELERY_BEAT_SCHEDULER = LEADER_SCHEDULER if REDIS_URL else "celery.beat:PersistentScheduler"
CELERY_BEAT_MAX_LOOP_INTERVAL = 5
CELERY_REDBEAT_LOCK_TIMEOUT = 20
CELERY_REDBEAT_REDIS_URL = REDIS_URL
CELERY_REDBEAT_KEY_PREFIX = "redbeat:"
# A Redis call of beat's never hangs: a leader cut off from Redis stands by and its lock expires.
CELERY_REDBEAT_REDIS_OPTIONS = {"socket_timeout": 5, "socket_connect_timeout": 5}
# Four queues, one worker pool each (bin/backoffice worker <queue>), so a slow PSP holding the payout
# workers never delays deposit crediting. Every task is routed by name; docs/ops/queues-and-retries-matrix.md
# lists them (a test compares the two). A task missing here would land in housekeeping, never nowhere.
CELERY_QUEUE_NAMES = ("webhooks", "payouts", "rounds", "housekeeping")
CELERY_TASK_QUEUES = tuple(Queue(name, routing_key=name) for name in CELERY_QUEUE_NAMES)
CELERY_TASK_DEFAULT_QUEUE = "housekeeping"
CELERY_TASK_DEFAULT_ROUTING_KEY = "housekeeping"
CELERY_TASK_ROUTES = {
    "webhooks.tasks.process_webhook_event": {"queue": "webhooks"},
    "webhooks.tasks.retry_stale_events": {"queue": "webhooks"},
    "payouts.tasks.submit_payout": {"queue": "payouts"},
    "payouts.tasks.requeue_payouts": {"queue": "payouts"},
    "payouts.tasks.reconcile_payouts": {"queue": "payouts"},
    "chain.tasks.track_chain_payouts": {"queue": "payouts"},
    "chain.tasks.scan_chain_deposits": {"queue": "webhooks"},
    "chain.tasks.check_hot_wallet": {"queue": "housekeeping"},
    "payouts.tasks.detect_stuck_finance_jobs": {"queue": "housekeeping"},
    "rounds.tasks.rounds_tick": {"queue": "rounds"},
    "ledger.tasks.reconcile_ledger": {"queue": "housekeeping"},
    "ops.tasks.escalate_overdue_waivers": {"queue": "housekeeping"},
}
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
FOUR_EYES_THRESHOLDS = env.json("FOUR_EYES_THRESHOLDS", default={"USD": "10000.00", "EUR": "10000.00", "USDC": "10000"})
PAYOUT_AUTO_PAUSE_AFTER_FAILURES = env.int("PAYOUT_AUTO_PAUSE_AFTER_FAILURES", default=5)
PAYOUT_MAX_RETRIES = env.int("PAYOUT_MAX_RETRIES", default=5)
PAYOUT_RETRY_BACKOFF_S = env.int("PAYOUT_RETRY_BACKOFF_S", default=30)
PAYOUT_PROVIDER_TIMEOUT_S = env.float("PAYOUT_PROVIDER_TIMEOUT_S", default=5.0)
# One PSP call in flight per payout (payouts/leases.py): a lease lasts the rail's call budget (its timeouts) plus this.
PAYOUT_LEASE_MARGIN_S = env.float("PAYOUT_LEASE_MARGIN_S", default=5.0)
PAYOUT_REQUEUE_AFTER_S = env.int("PAYOUT_REQUEUE_AFTER_S", default=30)
SIMULATION_ENABLED = env.bool("SIMULATION_ENABLED", default=False)
BOOTSTRAP_ENABLED = env.bool("BOOTSTRAP_ENABLED", default=False)

# PSPs. The stub (webhooks.stub) stands in for them outside production.
# STRIPE_KEY_MODE says which kind of key STRIPE_API_KEY must be (sk_/rk_ test or live); ADYEN_ENVIRONMENT
# picks Adyen's platform, and "live" needs the account's live endpoint prefix
# (`<prefix>-checkout-live.adyenpayments.com`).
STRIPE_KEY_MODE = env("STRIPE_KEY_MODE", default="test")
ADYEN_ENVIRONMENT = env("ADYEN_ENVIRONMENT", default="test")
ADYEN_LIVE_ENDPOINT_PREFIX = env("ADYEN_LIVE_ENDPOINT_PREFIX", default="")
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
# A plain deposit confirmation is credited in the webhook's request (webhooks.processing.webhook_event_credit_now)
# unless this is off. The deposit and event rows are locked NOWAIT; the ledger's accounts (the player's, and the
# stripe of the PSP clearing account the credit debits, webhooks/accounts.py) wait at most this long, else the worker
# credits it (bench/webhooks.py: at 250 ms a fifth of the deposits fell back to the far slower queue on a loaded
# machine, when every credit of a provider still locked its one clearing account).
WEBHOOK_CREDIT_IN_REQUEST = env.bool("WEBHOOK_CREDIT_IN_REQUEST", default=True)
WEBHOOK_CREDIT_NOW_LOCK_TIMEOUT_MS = env.int("WEBHOOK_CREDIT_NOW_LOCK_TIMEOUT_MS", default=2000)
# Stuck work and PSP reconciliation (minutes): see detect_stuck_finance_jobs and payouts/reconciliation.py.
STUCK_REQUESTED_AFTER_MINUTES = env.float("STUCK_REQUESTED_AFTER_MINUTES", default=24 * 60)
STUCK_APPROVED_AFTER_MINUTES = env.float("STUCK_APPROVED_AFTER_MINUTES", default=5)
STUCK_IN_FLIGHT_AFTER_MINUTES = env.float("STUCK_IN_FLIGHT_AFTER_MINUTES", default=5)
STUCK_UNCONFIRMED_AFTER_MINUTES = env.float("STUCK_UNCONFIRMED_AFTER_MINUTES", default=24 * 60)
STUCK_WEBHOOK_AFTER_MINUTES = env.float("STUCK_WEBHOOK_AFTER_MINUTES", default=5)
STUCK_ROUND_AFTER_MINUTES = env.float("STUCK_ROUND_AFTER_MINUTES", default=90)
PAYOUT_RECONCILE_AFTER_MINUTES = env.float("PAYOUT_RECONCILE_AFTER_MINUTES", default=5)
PAYOUT_MANUAL_RESOLVE_AFTER_MINUTES = env.float("PAYOUT_MANUAL_RESOLVE_AFTER_MINUTES", default=24 * 60)
WEBHOOK_RETRY_BACKOFF_S = env.float("WEBHOOK_RETRY_BACKOFF_S", default=1.0)
DEPOSIT_PROVIDER_TIMEOUT_S = env.float("DEPOSIT_PROVIDER_TIMEOUT_S", default=10.0)
DEPOSIT_RETURN_URL = env("DEPOSIT_RETURN_URL", default="http://localhost:8000/deposits/return")

# --- Traces and errors (ops/tracing.py): nothing is exported unless an endpoint / DSN is set ----
OTEL_EXPORTER_OTLP_ENDPOINT = env("OTEL_EXPORTER_OTLP_ENDPOINT", default="")
OTEL_SERVICE_NAME = env("OTEL_SERVICE_NAME", default="backoffice")
SENTRY_DSN = env("SENTRY_DSN", default="")

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
    "filters": {
        "correlation": {"()": "ops.logging.CorrelationIdFilter"},
        "trace": {"()": "ops.tracing.TraceIdLogFilter"},
    },
    "formatters": {
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s %(correlation_id)s %(flow_id)s %(trace_id)s",
            "rename_fields": {"asctime": "ts", "levelname": "level", "name": "logger"},
        },
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "json", "filters": ["correlation", "trace"]},
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        "celery": {"level": "INFO"},
        "axes": {"level": "WARNING"},  # one INFO line per login otherwise; lockouts are WARNING
    },
}
