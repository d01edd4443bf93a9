"""Gunicorn configuration for the `web` process (bin/backoffice web).

Everything here reads the environment so the container, compose.yaml and `make prod-local` share it:
PORT / BIND, WEB_CONCURRENCY (default: 2 x usable CPUs + 1), WEB_THREADS, WEB_TIMEOUT_S. The access log
is one JSON object per request on stdout (`config.gunicorn_logging.JsonAccessLogger`). When PROMETHEUS_MULTIPROC_DIR is set the directory is created
and emptied at start (stale files from a previous run would be counted). Server hooks live in a module
(`config.gunicorn_hooks` by default: it empties the metrics directory at start and marks a dead worker's
gauges as gone; GUNICORN_HOOKS_MODULE to change it): when it exists its hooks are used.
Every new worker is warmed before its first request (`post_worker_init`: config/warmup.py loads the URLconf
and the XNYS calendar), then the hooks module's own `post_worker_init`, if any, runs.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import shutil
from pathlib import Path


def _usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


bind = os.environ.get("BIND", f"0.0.0.0:{os.environ.get('PORT', '8000')}")
workers = int(os.environ.get("WEB_CONCURRENCY", 2 * _usable_cpus() + 1))
threads = int(os.environ.get("WEB_THREADS", "1"))
timeout = int(os.environ.get("WEB_TIMEOUT_S", "30"))
graceful_timeout = int(os.environ.get("WEB_GRACEFUL_TIMEOUT_S", "30"))
keepalive = 5
# Recycle a worker after this many requests (0: never), a guard against slow leaks, with up to 10% jitter
# so the workers do not all restart at once. A new worker is warmed before it serves (post_worker_init,
# config/warmup.py); even so a restart costs a process start, so recycling is rare: at the ~500 req/s a
# worker answers at most here, 50,000 requests is one restart per worker every few minutes at full load
# (2,000, the old default, was one every few seconds).
max_requests = int(os.environ.get("WEB_MAX_REQUESTS", "50000"))
max_requests_jitter = max_requests // 10
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None  # noqa: S108 - heartbeat files, not data
# Gunicorn's control socket (`gunicornc`, since 25.1) defaults to $HOME/.gunicorn/gunicorn.ctl: in the image
# HOME is the read-only code folder (/app), so the arbiter logged "Control server error: [Errno 13]" at every
# start, and on one machine every gunicorn would share that one path. Nothing here drives gunicornc, so it is
# off unless GUNICORN_CONTROL_SOCKET names a writable path for it (e.g. /tmp/gunicorn.ctl).
_control_socket = os.environ.get("GUNICORN_CONTROL_SOCKET", "")
control_socket_disable = not _control_socket
if _control_socket:
    control_socket = _control_socket
accesslog = "-"
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
# One JSON object per request, encoded by json.dumps (config/gunicorn_logging.py): a `"` or a `\` in a path or
# a user agent cannot break the line, as it would in an `access_log_format` template.
logger_class = "config.gunicorn_logging.JsonAccessLogger"

_multiproc_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")


def _prepare_multiproc_dir() -> None:
    """Empty the multiprocess metrics directory before the first worker starts."""
    if not _multiproc_dir:
        return
    path = Path(_multiproc_dir)
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)


_HOOKS = ("on_starting", "when_ready", "post_fork", "post_worker_init", "worker_exit", "child_exit", "on_exit")
_hooks_module_name = os.environ.get("GUNICORN_HOOKS_MODULE", "config.gunicorn_hooks")
_hooks_module = importlib.import_module(_hooks_module_name) if importlib.util.find_spec(_hooks_module_name) else None


def on_starting(server: object) -> None:
    _prepare_multiproc_dir()
    hook = getattr(_hooks_module, "on_starting", None)
    if hook is not None:
        hook(server)


def post_worker_init(worker: object) -> None:
    from config.warmup import warm_worker

    try:
        warm_worker()
    except Exception:  # a failed warm-up must not stop the worker: the first request loads what it needs
        import logging

        logging.getLogger("config.warmup").exception("web worker warm-up failed")
    hook = getattr(_hooks_module, "post_worker_init", None)
    if hook is not None:
        hook(worker)


for _name in _HOOKS:
    if _name not in ("on_starting", "post_worker_init") and _hooks_module is not None and hasattr(_hooks_module, _name):
        globals()[_name] = getattr(_hooks_module, _name)
