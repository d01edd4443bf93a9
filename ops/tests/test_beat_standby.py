"""Beat with a standby (config/beat.py): two beat processes, one schedules; the leader SIGKILLed, the standby
takes over within 30 s, and no tick runs twice.

Real processes on the test's Redis (REDIS_URL): two `celery beat` with the project's settings and scheduler
and one probe entry every 2 s (ops/tests/beat_probe.py), and a worker that runs the probe, which records its
tick, the sending beat's pid and the time it was sent. Beat A starts first and leads; beat B starts and stands
by; A gets SIGKILL (no chance to give the lock back), B takes over when A's lock expires. Every key and the
queue are the run's own (BEAT_PROBE_RUN) and are deleted at the end.

Then, in process, the scheduler's stand-by rules: a beat that finds its lock taken or Redis unreachable sends
nothing and stands by, without an exception; the one that takes the lock installs the schedule again.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest
import redis
from django.conf import settings

from ops.tests.processes import ROOT, free_port, stop, wait_until

PERIOD_S = 2  # the probe's grid (BEAT_PROBE_PERIOD_S); the test never imports beat_probe, which changes the app
TAKEOVER_LIMIT_S = 30.0  # issue 24: the standby takes over within 30 s of the leader's death
TICKS_BEFORE_AND_AFTER = 3
SENT = "Scheduler: Sending due task probe"


def start_beat(env: dict[str, str], log: IO[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(  # noqa: S603
        [sys.executable, "-m", "celery", "-A", "ops.tests.beat_probe", "beat", "--loglevel", "INFO"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


class Probe:
    """The run's keys on the test's Redis, its processes, and the records the probe left."""

    def __init__(self, tmp_path: Path) -> None:
        self.run = f"beat-probe-{uuid.uuid4().hex[:12]}"
        self.redis = redis.Redis.from_url(settings.REDIS_URL)
        self.logs = tmp_path
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "config.settings.test",
            "REDIS_URL": settings.REDIS_URL,
            "BEAT_PROBE_RUN": self.run,
            "BEAT_PROBE_PERIOD_S": str(PERIOD_S),
        }
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self, name: str) -> subprocess.Popen[bytes]:
        log = (self.logs / f"{name}.log").open("w")
        if name == "worker":
            command = [sys.executable, "-m", "celery", "-A", "ops.tests.beat_probe", "worker", "--pool", "solo"]
            command += ["--queues", f"{self.run}-queue", "--loglevel", "WARNING"]
            process = subprocess.Popen(  # noqa: S603
                command, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        else:
            process = start_beat(self.env, log)
        self.processes.append(process)
        return process

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")

    def records(self) -> list[dict[str, Any]]:
        return [json.loads(raw) for raw in self.redis.lrange(f"{self.run}:runs", 0, -1)]

    def sent_by(self, pid: int) -> list[dict[str, Any]]:
        return [r for r in self.records() if r["beat_pid"] == pid]

    def close(self) -> None:
        stop(*self.processes, kill=True)
        keys = [*self.redis.scan_iter(f"*{self.run}*")]
        if keys:
            self.redis.delete(*keys)


@pytest.fixture
def probe(tmp_path: Path) -> Iterator[Probe]:
    run = Probe(tmp_path)
    try:
        yield run
    finally:
        run.close()


def test_two_beats_one_schedules_and_the_standby_takes_over_within_30s_without_running_a_tick_twice(
    probe: Probe,
) -> None:
    probe.start("worker")
    leader = probe.start("beat-a")
    wait_until(lambda: len(probe.sent_by(leader.pid)) >= 1, 60, "beat A to send its first probe")
    standby = probe.start("beat-b")
    wait_until(lambda: "beat: standing by" in probe.log("beat-b"), 60, "beat B to stand by")
    seen = len(probe.sent_by(leader.pid))
    wait_until(lambda: len(probe.sent_by(leader.pid)) >= seen + TICKS_BEFORE_AND_AFTER, 30, "more ticks from A")

    os.killpg(leader.pid, signal.SIGKILL)  # no chance to give the lock back
    killed_at = time.time()
    leader.wait(10)
    wait_until(lambda: bool(probe.sent_by(standby.pid)), TAKEOVER_LIMIT_S + 15, "beat B to take over")
    taken = len(probe.sent_by(standby.pid))
    wait_until(lambda: len(probe.sent_by(standby.pid)) >= taken + TICKS_BEFORE_AND_AFTER, 30, "more ticks from B")
    stop(standby)
    sent = probe.log("beat-a").count(SENT) + probe.log("beat-b").count(SENT)  # as the beats logged them
    wait_until(lambda: len(probe.records()) >= sent, 30, "the worker to run every probe sent")
    time.sleep(1.0)
    assert len(probe.records()) == sent  # each probe sent ran once

    records = sorted(probe.records(), key=lambda r: r["sent_at"])
    by_a = [r for r in records if r["beat_pid"] == leader.pid]
    by_b = [r for r in records if r["beat_pid"] == standby.pid]
    assert len(by_a) + len(by_b) == len(records), "a probe from neither beat"
    # While A led, B sent nothing: every record before the kill is A's, every one after is B's.
    assert all(r["sent_at"] < killed_at for r in by_a) and all(r["sent_at"] > killed_at for r in by_b)
    takeover_s = by_b[0]["sent_at"] - killed_at
    print(f"beat standby: took over {takeover_s:.1f} s after the leader's SIGKILL; {len(by_a)} + {len(by_b)} ticks")
    assert takeover_s <= TAKEOVER_LIMIT_S
    # No tick ran twice, over the whole window.
    ticks = [r["tick"] for r in records]
    assert [t for t, n in Counter(ticks).items() if n > 1] == []
    # None skipped but in the takeover's gap: 2 s apart everywhere else.
    steps = [b - a for a, b in zip(ticks, ticks[1:], strict=False)]
    gap = len(by_a) - 1  # the step from A's last tick to B's first
    assert all(step == PERIOD_S for i, step in enumerate(steps) if i != gap), steps
    assert PERIOD_S <= steps[gap] <= TAKEOVER_LIMIT_S + PERIOD_S, steps
    # B stood by, then led; A never logged a lost lock (it died leading).
    assert "beat: leading" in probe.log("beat-a") and "beat: leading" in probe.log("beat-b")


@pytest.fixture
def beat_app() -> Iterator[Any]:
    """A Celery app of the test's own (the suite's app stays untouched) with one entry, far from due, and
    RedBeat's keys under a prefix of the run's own on the test's Redis."""
    from celery import Celery
    from celery.schedules import crontab

    prefix = f"beat-leader-{uuid.uuid4().hex[:12]}:"
    app = Celery("beat-leader-test", set_as_current=False)
    app.conf.update(
        broker_url=settings.REDIS_URL,
        redbeat_redis_url=settings.REDIS_URL,
        redbeat_key_prefix=prefix,
        redbeat_lock_timeout=20,
        beat_max_loop_interval=5,
        beat_schedule={
            "yearly": {"task": "nothing.yearly", "schedule": crontab(0, 0, day_of_month=1, month_of_year=1)}
        },
    )
    client = redis.Redis.from_url(settings.REDIS_URL)
    try:
        yield app
    finally:
        keys = [*client.scan_iter(f"{prefix}*")]
        if keys:
            client.delete(*keys)


def test_a_beat_that_loses_the_lock_or_redis_stands_by_and_the_one_taking_the_lock_installs_the_schedule(
    beat_app: Any,
) -> None:
    from config.beat import LeaderScheduler

    client = redis.Redis.from_url(settings.REDIS_URL)
    prefix = beat_app.conf.redbeat_key_prefix
    first, second = LeaderScheduler(app=beat_app), LeaderScheduler(app=beat_app)

    def installed() -> bool:
        return client.zscore(f"{prefix}:schedule", f"{prefix}yearly") is not None

    assert not installed()  # nothing installed before a beat leads

    assert first.tick() <= 5 and first.leading
    assert 15 < client.pttl(f"{prefix}:lock") / 1000 <= 20  # CELERY_REDBEAT_LOCK_TIMEOUT
    assert installed()
    assert second.tick() == 5 and not second.leading  # the standby sends nothing, retries in 5 s

    # Redis restarted empty: the lock and the schedule gone. The standby takes the lead and installs the schedule;
    # the old leader finds its lock taken at its next pass and stands by, without an exception.
    client.delete(*client.scan_iter(f"{prefix}*"))
    assert second.tick() <= 5 and second.leading
    assert installed()
    assert first.tick() == 5 and not first.leading
    assert second.tick() <= 5 and second.leading and not first.leading

    # Redis unreachable: a beat stands by rather than exits.
    second.lock.redis = redis.Redis(port=free_port(), socket_connect_timeout=0.5)
    assert second.tick() == 5 and not second.leading

    # A clean stop gives the lock back; the other beat leads at its next pass.
    second.lock = None
    client.delete(f"{prefix}:lock")
    first.close()
    assert first.tick() <= 5 and first.leading
    first.close()
    assert client.exists(f"{prefix}:lock") == 0
