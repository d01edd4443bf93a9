"""Run one callable in several threads released together, each on its own database connection.

For the tests that show a job is safe when two runs (two beats' ticks, a command beside a task) meet: each
thread waits at one barrier, calls the job, and closes its connection; the outcomes come back in finishing
order, an exception in place of a result, so the test asserts on both.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

from django.db import connection

T = TypeVar("T")


def at_once(job: Callable[[], T], *, threads: int = 2) -> list[T | BaseException]:
    """Call `job` in `threads` threads at the same moment; return each result or the exception it raised."""
    barrier = threading.Barrier(threads)
    outcomes: list[T | BaseException] = []

    def run() -> None:
        try:
            barrier.wait()
            outcomes.append(job())
        except BaseException as exc:  # noqa: BLE001 (returned to the test, which asserts on it)
            outcomes.append(exc)
        finally:
            connection.close()

    started = [threading.Thread(target=run) for _ in range(threads)]
    for thread in started:
        thread.start()
    for thread in started:
        thread.join()
    return outcomes


def results(outcomes: list[T | BaseException]) -> list[T]:
    """The results, or the first exception raised again (a job that should never fail)."""
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome
    return outcomes  # type: ignore[return-value]
