"""gunicorn's access log as one JSON object per request, built with `json.dumps`.

gunicorn's own `access_log_format` is a %-template: a JSON-looking template breaks as soon as a value holds a
`"` or a `\\` (a request path, a user agent, a query string are the client's to choose), and a broken line is a
request the log pipeline never sees. Here each value is encoded by `json.dumps` (ASCII only, so control and
non-ASCII characters are escaped too): whatever the client sends, the line parses.
"""

from __future__ import annotations

import json
import os
import traceback
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from gunicorn.glogging import Logger


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def access_record(atoms: Mapping[str, Any]) -> dict[str, Any]:
    """The access log's fields, from gunicorn's atoms (`Logger.atoms`)."""
    now = datetime.now(UTC)
    micros = _int_or_none(atoms.get("D"))
    return {
        "ts": f"{now:%Y-%m-%d %H:%M:%S},{now.microsecond // 1000:03d}",  # the JSON logs' layout (UTC)
        "logger": "gunicorn.access",
        "remote": atoms.get("h", "-"),
        "method": atoms.get("m"),
        "path": atoms.get("U"),
        "query": atoms.get("q") or "",
        "status": _int_or_none(str(atoms.get("s", "")).split(" ", 1)[0]),
        "bytes": _int_or_none(atoms.get("B")),
        "duration_s": micros / 1_000_000 if micros is not None else None,
        "pid": os.getpid(),
        "correlation_id": atoms.get("{x-request-id}o", "-"),
        "user_agent": atoms.get("a", "-"),
    }


def access_line(atoms: Mapping[str, Any]) -> str:
    """One access log line: a JSON object in ASCII, whatever the path or the user agent holds."""
    return json.dumps(access_record(atoms), ensure_ascii=True, default=str)


class JsonAccessLogger(Logger):
    """gunicorn's logger, with the access log written by `access_line` instead of `access_log_format`."""

    def access(self, resp: Any, req: Any, environ: Mapping[str, Any], request_time: Any) -> None:
        if not self.access_log_enabled:
            return
        try:
            self.access_log.info("%s", access_line(self.atoms(resp, req, environ, request_time)))
        except Exception:  # as gunicorn does: a logging failure must not fail the request
            self.error(traceback.format_exc())
