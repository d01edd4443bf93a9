"""Settings for `make run`: a developer's machine, the embedded PostgreSQL (`make run` sets DATABASE_URL) and a
file broker by default."""

from .base import *  # noqa: F403
from .base import env

DEBUG = env.bool("DJANGO_DEBUG", default=True)
SECRET_KEY = env("DJANGO_SECRET_KEY", default="local-insecure-not-for-production")
SIMULATION_ENABLED = env.bool("SIMULATION_ENABLED", default=True)
# The local PSP stub (`make run` starts it on STUB_PORT; docs/ops/local_psp.md): every process and every
# `manage.py` command under these settings points both SDKs at it, whatever shell it runs from. Setting
# STRIPE_API_BASE / ADYEN_API_BASE overrides it (empty: the real PSPs' test platforms).
_STUB_URL = f"http://127.0.0.1:{env.int('STUB_PORT', default=12111)}"
STRIPE_API_BASE = env("STRIPE_API_BASE", default=_STUB_URL)
ADYEN_API_BASE = env("ADYEN_API_BASE", default=_STUB_URL)
STRIPE_API_KEY = env("STRIPE_API_KEY", default="sk_test_local")
STRIPE_WEBHOOK_SECRET = env("STRIPE_WEBHOOK_SECRET", default="whsec_local")
ADYEN_API_KEY = env("ADYEN_API_KEY", default="adyen_local_key")
ADYEN_MERCHANT_ACCOUNT = env("ADYEN_MERCHANT_ACCOUNT", default="LocalMerchant")
ADYEN_BALANCE_ACCOUNT_ID = env("ADYEN_BALANCE_ACCOUNT_ID", default="BA_LOCAL")
ADYEN_HMAC_KEY = env("ADYEN_HMAC_KEY", default="44782DEF547AAA06C910C43932B1EB0C71FC68D9D0C057550C48EC2ACF6BA056")
CUSTODY_WEBHOOK_KEY = env("CUSTODY_WEBHOOK_KEY", default="custody-local-key")
LOG_LEVEL = env("LOG_LEVEL", default="INFO")
BOOTSTRAP_ENABLED = env.bool("BOOTSTRAP_ENABLED", default=True)
# The demo oracle: two "sources" served by the local PSP stub (`make run` starts it on STUB_PORT).
_STUB = f"{_STUB_URL}/_stub/prices"
ORACLE_SOURCES = env.json(
    "ORACLE_SOURCES",
    default=[
        {"name": "stub-a", "url": _STUB + "/a/{instrument}/{date}", "field": "close"},
        {"name": "stub-b", "url": _STUB + "/b/{instrument}/{date}", "field": "close"},
    ],
)
