"""The Celery app of the beat standby test (test_beat_standby.py): the project's app, its beat settings and its
scheduler (config.beat.LeaderScheduler), with one schedule entry only, a probe every 2 s on a grid.

`celery -A ops.tests.beat_probe beat` sends the probe; each beat stamps what it sends with the time and its
pid (before_task_publish). `celery -A ops.tests.beat_probe worker` runs it: the probe appends one record to a
Redis list, with its tick (the grid point it was sent for). BEAT_PROBE_RUN names the run: it prefixes the
Redis keys (RedBeat's lock and schedule, the records) and names the probe's queue, so runs never mix;
BEAT_PROBE_PERIOD_S sets the grid. Only those processes import this module: importing it changes the app's
schedule and RedBeat's keys.
"""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime
from typing import Any

import redis
from celery.signals import before_task_publish
from redbeat.schedules import rrule

from config.celery_app import app

PERIOD_S = int(os.environ.get("BEAT_PROBE_PERIOD_S", "2"))
RUN = os.environ.get("BEAT_PROBE_RUN", "beat-probe")
QUEUE = f"{RUN}-queue"
RECORDS = f"{RUN}:runs"
TASK = "ops.tests.beat_probe.probe"


def _grid_start() -> datetime:
    """The start of this minute (an even second): every process's grid is the same 2-s grid."""
    now = int(time.time())
    return datetime.fromtimestamp(now - now % 60, tz=UTC)


app.conf.update(
    beat_schedule={
        "probe": {
            "task": TASK,
            "schedule": rrule("SECONDLY", interval=PERIOD_S, dtstart=_grid_start()),
            "options": {"queue": QUEUE},
        }
    },
    redbeat_key_prefix=f"{RUN}:redbeat:",
)


def tick_of(sent_at: float) -> int:
    """The grid point a probe sent at `sent_at` was due at (beat sends it just after)."""
    return int(sent_at // PERIOD_S) * PERIOD_S


@before_task_publish.connect(sender=TASK)
def _stamp(body: Any = None, **_kwargs: Any) -> None:
    """In beat: stamp the probe with when and by whom it was sent (protocol 2: body = (args, kwargs, embed))."""
    body[1].update(sent_at=time.time(), beat_pid=os.getpid())


@app.task(name=TASK)
def probe(sent_at: float = 0.0, beat_pid: int = 0) -> None:
    """Record one run: its tick, when it was sent, by which beat."""
    record = {"tick": tick_of(sent_at), "sent_at": sent_at, "beat_pid": beat_pid, "ran_at": time.time()}
    redis.Redis.from_url(app.conf.broker_url).rpush(RECORDS, json.dumps(record))
