"""Deploy check: no demo clock outside development (`rounds.E001`).

The rounds' demo clock (`rounds.clock`, `manage.py demo_clock`) applies only where ENVIRONMENT=development; anywhere
else `rounds.clock.now` never reads its file. A file left in RUN_DIR there is still a sign of a development folder
deployed by mistake, so `manage.py check --deploy` (run by `deploy_preflight` before serving) fails while it
exists. The check only looks whether the file is there; it never reads it.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, register

from .clock import demo_clock_enabled, offset_path

TAG = "production"


@register(TAG, deploy=True)
def no_demo_clock(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    if demo_clock_enabled():
        return []
    path = offset_path()
    if not path.exists():
        return []
    return [
        Error(
            f"demo_clock: a demo clock offset file exists at {path} (ENVIRONMENT={settings.ENVIRONMENT})",
            hint="remove it: the demo clock is for `make run` only; the rounds here ignore it and run on the real time",
            id="rounds.E001",
        )
    ]
