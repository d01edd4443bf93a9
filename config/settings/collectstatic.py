"""Settings for `collectstatic` at image build time: the local settings with production's static storage.

The production settings refuse to import without their secrets, and a build has none; collecting with the
local settings' plain storage would leave production without the manifest it reads the hashed names from.
"""

from .base import STORAGES_COLLECTED
from .local import *  # noqa: F403

STORAGES = STORAGES_COLLECTED
