"""Security headers: CORS only for listed origins, CSP on the admin and the API docs, no-store on
authenticated API answers, HSTS, a working-day staff session, the proxy header from settings."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.test.utils import override_settings

pytestmark = pytest.mark.django_db


def test_no_cors_origin_is_allowed_by_default(client: Client) -> None:
    response = client.options(
        "/v1/wallet", HTTP_ORIGIN="https://evil.example", HTTP_ACCESS_CONTROL_REQUEST_METHOD="GET"
    )
    assert "Access-Control-Allow-Origin" not in response


def test_a_listed_origin_gets_cors_headers(client: Client, settings: Any) -> None:
    settings.CORS_ALLOWED_ORIGINS = ["https://app.example.net"]
    response = client.options(
        "/v1/wallet",
        HTTP_ORIGIN="https://app.example.net",
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="GET",
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="authorization",
    )
    assert response["Access-Control-Allow-Origin"] == "https://app.example.net"
    assert "authorization" in response["Access-Control-Allow-Headers"]
    other = client.options("/v1/wallet", HTTP_ORIGIN="https://evil.example", HTTP_ACCESS_CONTROL_REQUEST_METHOD="GET")
    assert "Access-Control-Allow-Origin" not in other


def test_the_admin_and_the_docs_page_carry_a_content_security_policy(client: Client, make_staff: Any) -> None:
    login = client.get("/admin/login/")
    policy = login["Content-Security-Policy"]
    assert "default-src 'self'" in policy and "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert "unsafe-inline" not in policy.split("script-src")[1].split(";")[0]
    client.force_login(make_staff(role="finance"))
    assert "default-src 'self'" in client.get("/admin/")["Content-Security-Policy"]
    docs = client.get("/v1/docs")
    assert docs.status_code == 200 and "script-src 'self'" in docs["Content-Security-Policy"]
    assert b"<script>" not in docs.content  # the init script is a file (the split view), no inline script
    assert client.get("/v1/docs?script=").status_code == 200


def test_authenticated_api_answers_are_not_stored(player: Any, api_client_for: Any, client: Client) -> None:
    response = api_client_for(player).get("/v1/wallet")
    assert response.status_code == 200
    assert {"no-store", "private"} <= {p.strip() for p in response["Cache-Control"].split(",")}
    assert "no-store" in APIClientWithBadToken().get("/v1/wallet")["Cache-Control"]


def APIClientWithBadToken() -> Any:  # noqa: N802
    from rest_framework.test import APIClient

    c = APIClient()
    c.credentials(HTTP_AUTHORIZATION="Token nope")
    return c


def test_public_answers_keep_their_caching(client: Client) -> None:
    assert "no-store" not in client.get("/health").get("Cache-Control", "")


def test_staff_sessions_last_a_working_day(settings: Any) -> None:
    assert settings.SESSION_COOKIE_AGE == 8 * 3600


@override_settings(
    SECURE_SSL_REDIRECT=True,
    SECURE_HSTS_SECONDS=31_536_000,
    SECURE_HSTS_PRELOAD=False,
    SECURE_PROXY_SSL_HEADER=("HTTP_X_FORWARDED_PROTO", "https"),
)
def test_hsts_a_year_no_preload_and_the_proxy_header(client: Client) -> None:
    assert client.get("/health").status_code == 301  # plain HTTP is redirected
    response = client.get("/health", HTTP_X_FORWARDED_PROTO="https")
    assert response.status_code == 200
    assert response["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"


def test_production_settings_read_the_proxy_header_and_hsts_from_the_environment() -> None:
    import os
    import subprocess
    import sys
    from pathlib import Path

    from ops.tests.test_deploy_checks import GOOD_ENV

    # Production settings only parse the URL here (no connection); GOOD_ENV's own is a placeholder until the
    # deploy-check tests' fixture fills it in, so this test must not depend on their order.
    code = (
        "from django.conf import settings as s; "
        "print(s.SECURE_PROXY_SSL_HEADER, s.SECURE_HSTS_SECONDS, s.SECURE_HSTS_PRELOAD, s.SESSION_COOKIE_AGE)"
    )
    env = {
        **{k: v for k, v in os.environ.items() if k in ("PATH", "HOME")},
        **GOOD_ENV,
        "DATABASE_URL": "postgres://backoffice_app@127.0.0.1:5432/backoffice",
        "SECURE_PROXY_SSL_HEADER": "HTTP_X_FORWARDED_SCHEME=https",
    }
    out = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code],
        cwd=Path(__file__).resolve().parents[2],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.stdout.strip().splitlines()[-1] == "('HTTP_X_FORWARDED_SCHEME', 'https') 31536000 False 28800", (
        out.stderr
    )
