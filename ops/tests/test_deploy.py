"""The deployment files agree: the image, compose.yaml and `make prod-local` run the Procfile's commands."""

from __future__ import annotations

import json
import os
import re
import runpy
import subprocess
import time
from pathlib import Path
from typing import Any

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
    final = dockerfile[dockerfile.index("AS final") :]
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
    assert config["logger_class"] == "config.gunicorn_logging.JsonAccessLogger"
    assert "access_log_format" not in config  # a %-template cannot escape what the client sends
    monkeypatch.setenv("WEB_CONCURRENCY", "3")
    assert runpy.run_path(str(ROOT / "config" / "gunicorn.conf.py"))["workers"] == 3


def test_gunicorn_control_socket_is_off_unless_a_path_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    """Its default, $HOME/.gunicorn, is the image's read-only code folder: gunicorn logged Errno 13 there."""
    monkeypatch.delenv("GUNICORN_CONTROL_SOCKET", raising=False)
    config = runpy.run_path(str(ROOT / "config" / "gunicorn.conf.py"))
    assert config["control_socket_disable"] is True
    assert "control_socket" not in config
    monkeypatch.setenv("GUNICORN_CONTROL_SOCKET", "/tmp/gunicorn.ctl")
    config = runpy.run_path(str(ROOT / "config" / "gunicorn.conf.py"))
    assert config["control_socket_disable"] is False
    assert config["control_socket"] == "/tmp/gunicorn.ctl"


def test_the_image_leaves_out_the_tests_and_the_test_tools() -> None:
    """The PSP stub and the chain's test bridge run beside the image, never in it (make image-smoke checks that
    every module left in imports without them)."""
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {"**/tests", "conftest.py", "bench", "webhooks/stub", "payouts/chain/testing", ".git", ".venv"} <= ignored
    assert "docs" not in ignored  # the canary reads docs/ops/canary_report_template.md


def test_the_entrypoint_refuses_an_unknown_queue() -> None:
    result = subprocess.run(
        [str(ROOT / "bin" / "backoffice"), "worker", "default"],  # noqa: S603
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert "unknown queue 'default'" in result.stderr


def _release_step(**urls: str) -> subprocess.CompletedProcess[str]:
    import sys

    from django.conf import settings

    from ops.tests.test_seed_scripts import PRODUCTION_ENV

    env = {
        **{k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "DATABASE_OWNER_URL")},
        **PRODUCTION_ENV,
        "PYTHON": sys.executable,
        "REDIS_URL": settings.CELERY_BROKER_URL,
        **urls,
    }
    return subprocess.run(
        [str(ROOT / "bin" / "backoffice"), "migrate"],
        cwd=ROOT,
        env=env,  # noqa: S603
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _url(user: str) -> str:
    from django.db import connection

    db = connection.settings_dict
    return f"postgres://{user}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


@pytest.mark.django_db(transaction=True)
def test_the_release_step_migrates_as_the_owner_then_grants_the_application_role() -> None:
    """`make migrate-prod` and compose's `migrate` run `bin/backoffice migrate` (here on the migrated test
    database): migrations with DATABASE_OWNER_URL, then setup_db_roles; DATABASE_URL (the processes') is
    the application role's."""
    from django.db import connection

    from ops.db_roles import app_role, grant_problems

    owner = connection.settings_dict["USER"]
    result = _release_step(DATABASE_URL=_url(app_role()), DATABASE_OWNER_URL=_url(owner))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No migrations to apply." in result.stdout
    assert f"setup_db_roles: role {app_role()} exists" in result.stdout
    with connection.cursor() as cursor:
        assert grant_problems(cursor) == []


@pytest.mark.django_db(transaction=True)
def test_the_release_step_as_the_application_role_fails() -> None:
    from ops.db_roles import app_role

    result = _release_step(DATABASE_URL=_url(app_role()))
    assert result.returncode != 0
    assert "setup_db_roles: runs as the owner role" in result.stderr, result.stdout + result.stderr


def _access_atoms(**overrides: Any) -> dict[str, Any]:
    atoms = {
        "h": "10.0.0.1",
        "m": "GET",
        "U": "/health",
        "q": "",
        "s": "200",
        "B": 12,
        "D": 4000,
        "L": "0.004000",
        "p": "<42>",
        "{x-request-id}o": "abc",
        "a": "curl/8",
    }
    return {**atoms, **overrides}


@pytest.mark.parametrize(
    ("path", "user_agent"),
    [
        ('/v1/x"y', 'Mozilla/5.0 "quoted" (X11)'),
        ("/static/a\\\\b\\", "agent\\"),  # backslashes, one closing the string
        ('/v1/x\\"}, "status": 500, "path": "/forged', 'ua"}\n{"logger": "forged"'),  # an injected object
        ("/v1/caf\u00e9\t\x00", "ua\r\n\x1b[31m"),  # non-ASCII and control characters
    ],
)
def test_the_access_log_line_is_json_whatever_the_client_sends(path: str, user_agent: str) -> None:
    from config.gunicorn_logging import access_line

    line = access_line(_access_atoms(U=path, a=user_agent, q='a="b"'))
    assert "\n" not in line and line.isascii()
    record = json.loads(line)
    assert (record["path"], record["user_agent"], record["query"]) == (path, user_agent, 'a="b"')
    assert (record["status"], record["bytes"], record["duration_s"], record["correlation_id"]) == (
        200,
        12,
        0.004,
        "abc",
    )
    assert record["logger"] == "gunicorn.access" and record["pid"] == os.getpid()


def _test_database_url() -> str:
    """The test database as the processes log in to it: the application role (the deploy check refuses a
    superuser or the tables' owner)."""
    from django.conf import settings
    from django.db import connection

    db = connection.settings_dict
    return f"postgres://{settings.DB_APP_ROLE}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


@pytest.fixture
def production_web(tmp_path: Path, transactional_db: Any) -> Any:
    """gunicorn through the entrypoint (`bin/backoffice web`) on the production settings, after `collectstatic`
    into a temporary STATIC_ROOT as the image's build does; yields (base URL, STATIC_ROOT, log file). The
    entrypoint's deploy checks read the (migrated, demo-free) test database."""
    import sys
    import urllib.request

    from ops.tests.processes import free_port, stop, wait_until
    from ops.tests.test_seed_scripts import PRODUCTION_ENV

    static_root = tmp_path / "static"
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("PROMETHEUS_MULTIPROC_DIR", "DJANGO_ALLOW_ASYNC_UNSAFE")},
        **PRODUCTION_ENV,
        "PYTHON": sys.executable,
        "STATIC_ROOT": str(static_root),
        "DATABASE_URL": _test_database_url(),
        "REDIS_URL": "redis://127.0.0.1:6379/15",
        "PORT": str(port),
        "WEB_CONCURRENCY": "1",
        "LOG_LEVEL": "INFO",
    }
    collected = subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "--verbosity", "0"],  # noqa: S603
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert collected.returncode == 0, collected.stdout + collected.stderr
    log_path = tmp_path / "web.log"
    with log_path.open("w") as log:
        web = subprocess.Popen(
            [str(ROOT / "bin" / "backoffice"), "web"],
            cwd=ROOT,
            env=env,  # noqa: S603
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        if web.poll() is not None:  # the entrypoint refused to start: say why
            raise AssertionError(f"bin/backoffice web exited {web.returncode}:\n{log_path.read_text()[-3000:]}")
        try:
            urllib.request.urlopen(f"{base}/health", timeout=2)  # noqa: S310 - our own server
        except urllib.error.HTTPError:
            return True  # it answered (a redirect or an error page is still an answer)
        except OSError:
            return False
        return True

    try:
        wait_until(answers, 120, "gunicorn to answer")  # the deploy checks run first
        yield base, static_root, log_path
    finally:
        stop(web)


def _get(url: str, **headers: str) -> Any:
    import requests

    return requests.get(
        url,
        headers={"Host": "backoffice.example.net", "X-Forwarded-Proto": "https", **headers},
        timeout=10,
        allow_redirects=False,
    )


def test_production_serves_the_admin_css_with_a_long_cache_and_logs_json(production_web: Any) -> None:
    base, static_root, log_path = production_web
    manifest = json.loads((static_root / "staticfiles.json").read_text())
    hashed = manifest["paths"]["admin/css/base.css"]
    assert hashed != "admin/css/base.css"  # a content-hashed name

    response = _get(f"{base}/static/{hashed}", **{"Accept-Encoding": "gzip"})
    assert response.status_code == 200, response.text[:500]
    assert response.headers["Content-Type"].startswith("text/css")
    assert response.headers["Cache-Control"] == "max-age=315360000, public, immutable"
    assert response.headers.get("Content-Encoding") == "gzip"  # the compressed copy collectstatic wrote
    assert "#header" in response.text  # the admin's stylesheet itself
    plain = _get(f"{base}/static/admin/css/base.css")  # the unhashed name: served, cached briefly
    assert plain.status_code == 200 and "immutable" not in plain.headers["Cache-Control"]
    assert _get(f"{base}/static/admin/css/missing.css").status_code == 404

    # The access log of these requests, and of a path and a user agent full of quotes, is JSON line by line.
    nasty_agent = 'Mozilla/5.0 "quoted" \\ back\\'
    assert _get(f"{base}/static/x%22y%5C", **{"User-Agent": nasty_agent}).status_code == 404
    deadline = time.monotonic() + 10
    while True:
        access = [json.loads(line) for line in log_path.read_text().splitlines() if '"gunicorn.access"' in line]
        if any(r["user_agent"] == nasty_agent for r in access) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    [nasty] = [r for r in access if r["user_agent"] == nasty_agent]
    assert nasty["path"] == '/static/x"y\\' and nasty["status"] == 404
    assert any(r["path"] == f"/static/{hashed}" and r["status"] == 200 for r in access)


def test_the_gunicorn_config_uses_the_metrics_hooks_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without GUNICORN_HOOKS_MODULE, a dead worker's gauges are marked gone (config.gunicorn_hooks.child_exit)."""
    from config import gunicorn_hooks

    monkeypatch.delenv("GUNICORN_HOOKS_MODULE", raising=False)
    settings = runpy.run_path(str(Path(__file__).resolve().parents[2] / "config" / "gunicorn.conf.py"))
    assert settings["child_exit"] is gunicorn_hooks.child_exit
    assert callable(settings["post_worker_init"]) and callable(settings["on_starting"])
