"""The deployment files agree: the image, compose.yaml and `make prod-local` run the Procfile's commands."""

from __future__ import annotations

import json
import os
import re
import runpy
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


def procfile() -> dict[str, list[str]]:
    entries = re.findall(r"^([a-z-]+): (.+)$", (ROOT / "Procfile").read_text(), re.MULTILINE)
    return {name: command.split() for name, command in entries}


def test_compose_services_run_the_procfile_commands_through_the_image_entrypoint() -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    services = compose["services"]
    for name, command in procfile().items():
        assert command[0] == "bin/backoffice", name
        service = "migrate" if name == "release" else name
        assert services[service]["command"] == command[1:], service
    assert {"db", "redis"} <= set(services)
    assert services["migrate"]["restart"] == "no"
    for name in ("web", "beat", *[n for n in services if n.startswith("worker-")]):
        assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        assert services[name]["env_file"] == ".env"


def test_the_image_is_slim_non_root_and_checks_readiness() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    final = dockerfile[dockerfile.index("AS final"):]
    assert re.search(r"^FROM python:3\.11-slim\S* AS final$", dockerfile, re.MULTILINE)
    assert "build-essential" not in final and "gcc" not in final
    assert re.search(r"^USER app$", final, re.MULTILINE)
    assert "/health/ready" in final.split("HEALTHCHECK", 1)[1]
    assert 'ENTRYPOINT ["bin/backoffice"]' in final


def test_gunicorn_config_sizes_workers_from_the_cpus_and_logs_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WEB_CONCURRENCY", raising=False)
    config = runpy.run_path(str(ROOT / "config" / "gunicorn.conf.py"))
    assert config["workers"] == 2 * len(os.sched_getaffinity(0)) + 1
    assert config["timeout"] == 30 and config["accesslog"] == "-"
    atoms = {"t": "[27/Nov/2026:09:00:00 +0000]", "h": "10.0.0.1", "m": "GET", "U": "/health", "q": "",
             "s": "200", "B": "12", "L": "0.004", "p": "42", "{x-request-id}o": "abc", "a": "curl/8"}
    line = json.loads(config["access_log_format"] % atoms)
    assert line["status"] == 200 and line["path"] == "/health" and line["correlation_id"] == "abc"
    monkeypatch.setenv("WEB_CONCURRENCY", "3")
    assert runpy.run_path(str(ROOT / "config" / "gunicorn.conf.py"))["workers"] == 3


def test_the_entrypoint_refuses_an_unknown_queue() -> None:
    result = subprocess.run([str(ROOT / "bin" / "backoffice"), "worker", "default"],  # noqa: S603
                            capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 2
    assert "unknown queue 'default'" in result.stderr


@pytest.mark.django_db(transaction=True)
def test_the_release_step_migrates_with_the_production_settings() -> None:
    """`make migrate-prod` and compose's `migrate` run `bin/backoffice migrate` (here on the migrated test database)."""
    import sys

    from django.conf import settings
    from django.db import connection

    from ops.tests.test_seed_scripts import PRODUCTION_ENV

    db = connection.settings_dict
    env = {**os.environ, **PRODUCTION_ENV, "PYTHON": sys.executable, "REDIS_URL": settings.CELERY_BROKER_URL,
           "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"}
    result = subprocess.run([str(ROOT / "bin" / "backoffice"), "migrate"], cwd=ROOT, env=env,  # noqa: S603
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No migrations to apply." in result.stdout
