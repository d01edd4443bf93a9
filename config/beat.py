"""Beat with standbys: any number of beat processes may run; the one holding a lock in Redis schedules.

celery-redbeat keeps the schedule in Redis (each entry's definition and last run) and its lock there too.
Stock RedBeat takes the lock once, blocking, when beat starts, and exits as soon as it finds the lock lost or
Redis unreachable (sibson/redbeat#218, #230): after a Redis restart beat would be gone until a supervisor
restarts it, and an embedded beat (`celery worker --beat`) would be gone for good. Here the lock is taken and
kept in the beat loop itself, by every beat process:

- the leader extends the lock to CELERY_REDBEAT_LOCK_TIMEOUT at the start of every pass, before it sends
  anything (RedBeat's `tick`); a pass comes at least every CELERY_BEAT_MAX_LOOP_INTERVAL seconds. Finding the
  lock held by another beat, or Redis unreachable, it sends nothing and becomes a standby;
- a standby tries to take the lock every CELERY_BEAT_MAX_LOOP_INTERVAL seconds (SET NX with the timeout). The
  beat that takes it installs the schedule first (Redis may have restarted empty; each entry keeps the last
  run Redis has for it), then schedules.

Takeover: the dead leader's lock expires at most CELERY_REDBEAT_LOCK_TIMEOUT after its last extension, and a
standby tries within CELERY_BEAT_MAX_LOOP_INTERVAL of that: with 20 s and 5 s, about 25 s (plus the time of a
pass) after the leader's death, under the 30 s asked (ops/tests/test_beat_standby.py measures it).

Each tick at most once: RedBeat writes an entry's last run to Redis (`reserve`) before sending its task, and the
new leader sends only what falls due after that. A tick the dead leader sent is not sent again; the ticks that
fell due during the takeover are sent once, as one catch-up run (Celery never replays missed ticks one by one);
a tick reserved but not sent when the leader died is lost, and the next one does its work (every scheduled job
is a sweeper of what is due). The one window left: a leader frozen (SIGSTOP, a paused VM) longer than the lock's
timeout in the middle of a pass may finish that pass's sends after a standby took over. The scheduled jobs are
safe to run twice for that reason (docs/ops/scaling.md "Beat").
"""

from __future__ import annotations

import logging
from typing import Any

from celery.signals import beat_init
from redbeat.schedulers import (
    LUA_EXTEND_TO_SCRIPT,
    RedBeatConfig,
    RedBeatScheduler,
    acquire_distributed_beat_lock,
    get_redis,
)
from redis.exceptions import RedisError
from redis.lock import Lock

logger = logging.getLogger("celery.beat")

# RedBeat takes its lock at beat_init, blocking, once per process; LeaderScheduler takes it in the loop instead.
beat_init.disconnect(acquire_distributed_beat_lock)


class NamespacedRedBeatConfig(RedBeatConfig):
    """RedBeat's settings as the app reads them: `CELERY_REDBEAT_*` in Django's settings (namespace CELERY).

    RedBeat 2.4 looks for its keys without the namespace's prefix, so it took the ones set here for missing: it
    warned at every start, and left CELERY_REDBEAT_REDIS_OPTIONS (the socket timeouts) out of its client.
    """

    def is_key_in_conf(self, name: str) -> bool:
        return name in self.app.conf


class LeaderScheduler(RedBeatScheduler):
    """RedBeat's scheduler, leading while it holds the lock and standing by otherwise; it never exits for it."""

    lock: Lock | None = None
    leading = False
    _standby_logged = False

    def __init__(self, app: Any, *args: Any, **kwargs: Any) -> None:
        if getattr(app, "redbeat_conf", None) is None:
            app.redbeat_conf = NamespacedRedBeatConfig(app)
        super().__init__(app, *args, **kwargs)

    def setup_schedule(self) -> None:
        """Install nothing at start: the beat that takes the lead installs the schedule (`_take_lead`)."""

    def tick(self, *args: Any, **kwargs: Any) -> float:
        """One pass: lead (extend or take the lock, then send what is due) or stand by; the seconds to sleep."""
        try:
            if not self.leading and not self._take_lead():
                return float(self.max_interval)
            return float(super().tick(*args, **kwargs))  # extends the lock first: LockNotOwnedError if it is lost
        except RedisError as exc:  # the lock lost (LockError), or Redis unreachable: send nothing, stand by
            self._stand_by(f"{type(exc).__name__}: {exc}")
            return float(self.max_interval)

    def _take_lead(self) -> bool:
        """Take the lock if it is free (or still ours) and install the schedule; False if another beat holds it."""
        if self.lock is None:
            self.lock = self._new_lock()
        if not (self.lock.owned() or self.lock.acquire(blocking=False)):
            if not self._standby_logged:
                logger.info("beat: standing by: another beat holds the lock %s", self.lock_key)
                self._standby_logged = True
            return False
        super().setup_schedule()  # keeps each entry's last run from Redis; a lost one starts from now
        self.leading, self._standby_logged = True, False
        logger.info(
            "beat: leading: holding the lock %s (expires %s s after each pass)", self.lock_key, self.lock_timeout
        )
        return True

    def _stand_by(self, why: str) -> None:
        if self.leading:
            logger.warning("beat: no longer leading (%s); standing by", why)
        elif not self._standby_logged:
            logger.warning("beat: standing by (%s)", why)
            self._standby_logged = True
        self.leading = False

    def _new_lock(self) -> Lock:
        """The lock as RedBeat makes it: its extend sets the timeout anew rather than adding to what is left."""
        client = get_redis(self.app)
        lock = client.lock(self.lock_key, timeout=self.lock_timeout, sleep=self.max_interval)
        lock.lua_extend = client.register_script(LUA_EXTEND_TO_SCRIPT)
        return lock

    def close(self) -> None:
        """Give the lock back on a clean stop (a standby takes over at its next pass); Redis gone: it expires."""
        try:
            if self.lock is not None and self.lock.owned():
                self.lock.release()
                logger.info("beat: lock %s released", self.lock_key)
        except RedisError as exc:
            logger.warning("beat: lock not released (%s); it expires within %s s", exc, self.lock_timeout)
        self.lock = None
        super(RedBeatScheduler, self).close()  # Celery's own close: RedBeat's would log a release that may not be
