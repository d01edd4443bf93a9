"""Settings for `make lint`'s migration check (`makemigrations --check`): the models against their migration files.

That check needs no database, so it has none, whatever DATABASE_URL says: with one, Django would also check the
migration history recorded in it, and warn when the database it names does not exist (CI names one that only
the test suite's `test_` copy of is ever created). Django's dummy backend skips that check; any query fails.
"""

from .test import *  # noqa: F403
from .test import SILENCED_SYSTEM_CHECKS

DATABASES = {"default": {"ENGINE": "django.db.backends.dummy"}}
SILENCED_SYSTEM_CHECKS = [*SILENCED_SYSTEM_CHECKS, "ops.W100"]  # "DATABASE_URL is not set": none on purpose
