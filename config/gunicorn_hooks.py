"""Gunicorn server hooks for prometheus_client's multiprocess mode.

Use it as gunicorn's config module (`gunicorn -c python:config.gunicorn_hooks ...`) or import its
hooks into another config file (`from config.gunicorn_hooks import on_starting, child_exit`).

With PROMETHEUS_MULTIPROC_DIR set, every worker writes its counters and histograms to files in that
directory and `/metrics` sums them, so the figures do not depend on which worker answers a scrape:
- `on_starting` empties the directory when the master starts (stale files from a previous run would
  otherwise be added to the new counts);
- `child_exit` marks a dead worker's live gauges as gone.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def multiproc_dir() -> Path | None:
    """Return the multiprocess directory from the environment, or None when the mode is off."""
    value = os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")
    return Path(value) if value else None


def clean_multiproc_dir() -> None:
    """Create the directory if needed and remove every metrics file in it."""
    directory = multiproc_dir()
    if directory is None:
        return
    directory.mkdir(parents=True, exist_ok=True)
    for path in directory.glob("*.db"):
        path.unlink(missing_ok=True)


def on_starting(server: Any) -> None:
    """Gunicorn master start: begin with an empty metrics directory."""
    clean_multiproc_dir()


def child_exit(server: Any, worker: Any) -> None:
    """Gunicorn worker exit: tell prometheus_client that this process is gone."""
    if multiproc_dir() is not None:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
