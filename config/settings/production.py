"""Production settings: every secret must be set; nothing falls back to a default.

The deploy checks (`manage.py check --deploy`, `ops/checks.py`) and `verify_prod_env` refuse what is
unsafe here: test keys or the test PSP platforms, simulation, weak secrets, open CORS, short HSTS,
public metrics.
"""

from .base import *  # noqa: F403
from .base import LEADER_SCHEDULER, READONLY_DATABASE, STORAGES_COLLECTED, env, instrumented_database

DEBUG = False
ENVIRONMENT = "production"
STORAGES = STORAGES_COLLECTED  # run `collectstatic` before starting (the image does, at build time)
SECRET_KEY = env("DJANGO_SECRET_KEY")
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS")
DATABASES = {"default": instrumented_database(env.db("DATABASE_URL"))}
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
if READONLY_DATABASE:
    DATABASES["replica"] = READONLY_DATABASE
REDIS_URL = env("REDIS_URL")
CELERY_BROKER_URL = REDIS_URL
CELERY_BROKER_TRANSPORT_OPTIONS = {}
CELERY_BEAT_SCHEDULER = LEADER_SCHEDULER  # a beat and its standbys (config/beat.py)
CELERY_REDBEAT_REDIS_URL = REDIS_URL

STRIPE_KEY_MODE = env("STRIPE_KEY_MODE", default="live")
STRIPE_API_KEY = env("STRIPE_API_KEY")
STRIPE_WEBHOOK_SECRET = env("STRIPE_WEBHOOK_SECRET")
ADYEN_ENVIRONMENT = env("ADYEN_ENVIRONMENT", default="live")
ADYEN_LIVE_ENDPOINT_PREFIX = env("ADYEN_LIVE_ENDPOINT_PREFIX", default="")
ADYEN_API_KEY = env("ADYEN_API_KEY")
ADYEN_MERCHANT_ACCOUNT = env("ADYEN_MERCHANT_ACCOUNT")
ADYEN_BALANCE_ACCOUNT_ID = env("ADYEN_BALANCE_ACCOUNT_ID")
ADYEN_HMAC_KEY = env("ADYEN_HMAC_KEY")
CUSTODY_WEBHOOK_KEY = env("CUSTODY_WEBHOOK_KEY")
DEPOSIT_RETURN_URL = env("DEPOSIT_RETURN_URL")
STRIPE_API_BASE = ""
ADYEN_API_BASE = ""

# The simulation endpoint never exists in production, whatever the environment says.
SIMULATION_ENABLED = False
BOOTSTRAP_ENABLED = False

# Behind a TLS-terminating proxy that sets X-Forwarded-Proto (override or empty it with the variable).
_proxy_ssl_header = env("SECURE_PROXY_SSL_HEADER", default="HTTP_X_FORWARDED_PROTO=https")
SECURE_PROXY_SSL_HEADER = tuple(_proxy_ssl_header.split("=", 1)) if "=" in _proxy_ssl_header else None
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=365 * 24 * 3600)

METRICS_PUBLIC = False
