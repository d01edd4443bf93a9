"""`make prod-local`: the production settings on one machine, with the local PSP stub.

Exactly three differences from `production`, each because there is no real PSP or TLS here:
- the Stripe and Adyen SDKs talk to the PSP stub (STRIPE_API_BASE / ADYEN_API_BASE, required);
- ENVIRONMENT is `prod-local`, so the canary may post its own signed deposit and payout webhooks
  (`canary --simulate` is refused when ENVIRONMENT is `production`); the simulation endpoint stays off;
- HTTPS redirect is left to the environment (SECURE_SSL_REDIRECT=false: the stack serves plain HTTP).
Everything else, secrets included, is read exactly as production reads it.
"""

from .production import *  # noqa: F403
from .production import env

ENVIRONMENT = "prod-local"
# `bin/backoffice` runs the deploy checks before starting (`deploy_preflight`); the production rules these
# differences break are Info here (ops/checks.py), and so is Django's own plain-HTTP warning.
if not SECURE_SSL_REDIRECT:  # noqa: F405
    SILENCED_SYSTEM_CHECKS = [*SILENCED_SYSTEM_CHECKS, "security.W008"]  # noqa: F405
STRIPE_API_BASE = env("STRIPE_API_BASE")
ADYEN_API_BASE = env("ADYEN_API_BASE")
