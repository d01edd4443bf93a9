"""Real-browser test tools: Debian's Chromium driven by Playwright (never a downloaded browser).

The `browser` fixture (root conftest) launches it; `admin_login` opens a logged-in admin page.
Screenshots go to artifacts/screenshots/.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from accounts.tests.factories import PASSWORD

CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@contextmanager
def chromium() -> Iterator[Any]:
    """Launch Debian's Chromium headless; a missing browser fails the test, it does not skip."""
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: install Debian's chromium (.ci/run does)"
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; only for as long as the browser runs (a later
    # test's child process inherits os.environ, and production's deploy checks refuse this variable).
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            yield browser
            browser.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous
        # ORM calls made inside Playwright's context got their own connection; close it here.
        from django.db import connections

        connections.close_all()


def admin_login(browser: Any, base_url: str, email: str, *, viewport: dict[str, int] | None = None) -> Any:
    """Open a page logged into the admin as `email` (the factories' password)."""
    context = browser.new_context(
        base_url=base_url, accept_downloads=True, **({"viewport": viewport} if viewport else {})
    )
    page = context.new_page()
    page.goto("/admin/login/")
    page.fill("#id_username", email)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_selector("#user-tools")
    return page
