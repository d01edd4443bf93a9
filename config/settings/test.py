"""Settings for `make test`: the PostgreSQL named by DATABASE_URL (`make test` starts the embedded one when it
is unset: ops/embedded_pg.py) and Redis on 127.0.0.1."""

from .base import *  # noqa: F403
from .base import LEADER_SCHEDULER, env

SECRET_KEY = "test-insecure"
REDIS_URL = env("REDIS_URL", default="redis://127.0.0.1:6379/9")
CELERY_BROKER_URL = REDIS_URL
CELERY_BROKER_TRANSPORT_OPTIONS = {}
CELERY_BEAT_SCHEDULER = LEADER_SCHEDULER  # a beat and its standbys (config/beat.py)
CELERY_REDBEAT_REDIS_URL = REDIS_URL
CELERY_TASK_ALWAYS_EAGER = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
SIMULATION_ENABLED = True
STRIPE_API_KEY = "sk_test_stub"
STRIPE_WEBHOOK_SECRET = "whsec_test_secret"
ADYEN_API_KEY = "adyen_test_key"
ADYEN_MERCHANT_ACCOUNT = "TestMerchant"
ADYEN_BALANCE_ACCOUNT_ID = "BA_TEST"
ADYEN_HMAC_KEY = "44782DEF547AAA06C910C43932B1EB0C71FC68D9D0C057550C48EC2ACF6BA056"
CUSTODY_WEBHOOK_KEY = "custody-test-key"
LOG_LEVEL = "WARNING"
# Client timeout of payout PSP calls (the providers' default, 5 s); a worker started by a test may raise it.
PAYOUT_PROVIDER_TIMEOUT_S = env.float("PAYOUT_PROVIDER_TIMEOUT_S", default=5.0)
BOOTSTRAP_ENABLED = True
ENVIRONMENT = "test"
