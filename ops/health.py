"""Health checks: liveness, and readiness of the database and the broker.

`/health/live` answers without touching anything (a process probe); `/health` answers 503 when the database
is unreachable (the seeds' P0 check `curl -f /health`); `/health/ready` checks the database and the broker.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import connections


def check_database() -> dict[str, Any]:
    """Run a trivial query on the default database."""
    connection = connections["default"]
    started = time.perf_counter()
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:
        return {"status": "down", "vendor": connection.vendor, "error": str(exc)[:200]}
    return {"status": "ok", "vendor": connection.vendor, "ms": round((time.perf_counter() - started) * 1000, 1)}


def check_broker() -> dict[str, Any]:
    """Ping Redis, or check the file broker's folder is writable."""
    url = settings.CELERY_BROKER_URL
    started = time.perf_counter()
    if url.startswith("filesystem://"):
        folder = Path(str(settings.CELERY_BROKER_TRANSPORT_OPTIONS["data_folder_out"]))
        try:
            folder.mkdir(parents=True, exist_ok=True)
            probe = folder / ".ready-probe"
            probe.write_text("ok")
            probe.unlink()
        except OSError as exc:
            return {"status": "down", "kind": "filesystem", "error": str(exc)[:200]}
        return {"status": "ok", "kind": "filesystem"}
    try:
        import redis

        client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
        client.ping()
    except Exception as exc:
        return {"status": "down", "kind": "redis", "error": str(exc)[:200]}
    return {"status": "ok", "kind": "redis", "ms": round((time.perf_counter() - started) * 1000, 1)}


def readiness() -> tuple[bool, dict[str, Any]]:
    """Check every dependency; ready only when all are ok."""
    checks = {"database": check_database(), "broker": check_broker()}
    ready = all(c["status"] == "ok" for c in checks.values())
    return ready, {"status": "ok" if ready else "down", "checks": checks}
