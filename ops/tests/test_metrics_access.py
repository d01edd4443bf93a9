"""Who may read /metrics, and counters that agree across gunicorn workers (multiprocess mode)."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests
from django.test import Client
from prometheus_client.mmap_dict import MmapedDict

from config import gunicorn_hooks

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]
TOKEN = "Qm7Rk2v9Xp3Lz8Wn4Tc6Yb1Hd5Gf0Js2"


@pytest.fixture
def production_metrics(settings: Any) -> Any:
    """The metrics settings production forces: never public."""
    settings.METRICS_PUBLIC = False
    settings.METRICS_TOKEN = TOKEN
    settings.METRICS_ALLOWED_IPS = []
    return settings


def test_metrics_without_the_token_are_refused_in_production(client: Client, production_metrics: Any) -> None:
    refused = client.get("/metrics")
    assert refused.status_code == 401
    assert refused["Content-Type"] == "application/problem+json" and refused["WWW-Authenticate"].startswith("Bearer")
    assert b"tvl_" not in refused.content
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong-token").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"Token {TOKEN}").status_code == 401
    allowed = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert allowed.status_code == 200 and b"http_request_duration_seconds" in allowed.content


def test_metrics_from_an_allowed_address(client: Client, production_metrics: Any) -> None:
    production_metrics.METRICS_TOKEN = ""
    production_metrics.METRICS_ALLOWED_IPS = ["10.0.0.0/8"]
    assert client.get("/metrics", REMOTE_ADDR="10.1.2.3").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="192.0.2.1").status_code == 401
    # A forged X-Forwarded-For is not believed when no proxy is trusted.
    assert client.get("/metrics", REMOTE_ADDR="192.0.2.1", HTTP_X_FORWARDED_FOR="10.1.2.3").status_code == 401
    production_metrics.TRUSTED_PROXY_COUNT = 1
    assert client.get("/metrics", REMOTE_ADDR="192.0.2.9", HTTP_X_FORWARDED_FOR="10.1.2.3").status_code == 200
    assert (
        client.get("/metrics", REMOTE_ADDR="192.0.2.9", HTTP_X_FORWARDED_FOR="10.1.2.3, 192.0.2.1").status_code == 401
    )


def test_production_with_nothing_configured_refuses_everyone(client: Client, production_metrics: Any) -> None:
    production_metrics.METRICS_TOKEN = ""
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 401


def test_django_prometheus_counts_database_and_cache_work(client: Client, player: Any) -> None:
    from django.core.cache import cache

    cache.set("k", 1)
    cache.get("k")
    cache.get("missing")
    text = client.get("/metrics").content.decode()
    assert re.search(r'django_db_execute_total\{alias="default",vendor="postgresql"\} [1-9]', text)
    assert 'django_cache_get_total{backend="locmem"}' in text
    assert 'django_cache_get_hits_total{backend="locmem"}' in text
    assert "django_http_requests_total_by_method_total" in text


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _count(text: str) -> float:
    match = re.search(
        r'^http_request_duration_seconds_count\{method="GET",path="/health",status="200"\} (\S+)$', text, re.MULTILINE
    )
    assert match, text[:2000]
    return float(match.group(1))


def _health_count_per_worker(directory: Path) -> dict[str, float]:
    """Requests to /health answered 200 by each worker, read from its own multiprocess file."""
    counts: dict[str, float] = {}
    for path in directory.glob("histogram_*.db"):
        total = 0.0
        for key, value, *_ in MmapedDict.read_all_values_from_file(str(path)):
            _, name, labels, _ = json.loads(key)
            # Buckets are stored per bucket (not cumulative): their sum is the count.
            if (
                name == "http_request_duration_seconds_bucket"
                and labels.get("path") == "/health"
                and labels.get("status") == "200"
            ):
                total += value
        counts[path.stem.split("_")[-1]] = total
    return counts


def test_gunicorn_with_two_workers_reports_one_consistent_counter(settings: Any, tmp_path: Path) -> None:
    db = settings.DATABASES["default"]
    multiproc = tmp_path / "prometheus"
    multiproc.mkdir()
    (multiproc / "counter_999999.db").write_bytes(b"stale file from an earlier run")  # on_starting removes it
    port = _free_port()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "PROMETHEUS_MULTIPROC_DIR": str(multiproc),
    }
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "-c",
            "python:config.gunicorn_hooks",
            "--workers",
            "2",
            "--bind",
            f"127.0.0.1:{port}",
            "--log-level",
            "warning",
            "config.wsgi:application",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(f"{base}/health", timeout=30).status_code == 200:
                    break
            except requests.RequestException:  # workers still booting
                pass
            assert server.poll() is None and time.monotonic() < deadline, "gunicorn did not start"
            time.sleep(0.3)
        # Concurrent traffic on fresh connections until both workers have answered some of it
        # (a worker still booting under load may miss the first batches).
        sent = 1
        with ThreadPoolExecutor(max_workers=8) as pool:
            while True:
                codes = list(
                    pool.map(
                        lambda _: (
                            requests.get(f"{base}/health", timeout=10, headers={"Connection": "close"}).status_code
                        ),
                        range(16),
                    )
                )
                assert codes == [200] * 16
                sent += 16
                per_worker = _health_count_per_worker(multiproc)
                if len([n for n in per_worker.values() if n > 0]) == 2:
                    break
                assert time.monotonic() < deadline + 60, f"one worker answered everything: {per_worker}"
        # Five scrapes in a row, no traffic between: each reads the sum over both workers' files
        # (not the share of whichever worker answers), so all five agree.
        reads = [
            _count(requests.get(f"{base}/metrics", timeout=5, headers={"Connection": "close"}).text) for _ in range(5)
        ]
        total = sum(_health_count_per_worker(multiproc).values())
        assert total >= sent and min(per_worker.values()) > 0
        assert reads == [total] * 5, (reads, per_worker)
        assert not (multiproc / "counter_999999.db").exists()
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_the_hooks_clean_the_directory_only_when_the_mode_is_on(tmp_path: Path, monkeypatch: Any) -> None:
    (tmp_path / "gauge_livesum_1.db").write_bytes(b"x")
    (tmp_path / "keep.txt").write_text("not a metrics file")
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    gunicorn_hooks.on_starting(None)
    assert (tmp_path / "gauge_livesum_1.db").exists()
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    gunicorn_hooks.on_starting(None)
    assert not (tmp_path / "gauge_livesum_1.db").exists() and (tmp_path / "keep.txt").exists()
