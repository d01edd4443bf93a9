"""Record each background worker run, so `worker_runs_total{worker,result}` counts them."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

from django.utils import timezone

from .logging import get_correlation_id
from .models import WorkerRun

logger = logging.getLogger(__name__)


@contextlib.contextmanager
def worker_run(worker: str) -> Iterator[dict[str, Any]]:
    """Run a block as one worker run: ok if it returns, failed if it raises (and re-raise).

    The yielded dict is stored as the run's detail; a block may set `detail["result"] = "failed"`
    to record a run that finished but found a failure (e.g. a reconciliation breach).
    """
    started = timezone.now()
    detail: dict[str, Any] = {}
    try:
        yield detail
    except Exception as exc:
        detail["error"] = f"{type(exc).__name__}: {exc}"[:500]
        _record(worker, WorkerRun.Result.FAILED, started, detail)
        raise
    result = detail.pop("result", WorkerRun.Result.OK)
    _record(worker, result, started, detail)


def _record(worker: str, result: str, started: Any, detail: dict[str, Any]) -> None:
    try:
        WorkerRun.objects.create(
            worker=worker,
            result=result,
            started_at=started,
            finished_at=timezone.now(),
            detail=detail,
            correlation_id=get_correlation_id(),
        )
    except Exception:
        logger.exception("could not record the %s worker run", worker)
