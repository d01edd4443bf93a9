"""Deposit and webhook test fixtures: the PSP stub wired into settings, an in-process worker, helpers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest


@pytest.fixture
def enqueued(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Record the event ids handed to the worker after commit, instead of sending them to the broker."""
    sent: list[int] = []
    monkeypatch.setattr("webhooks.receiving._send_to_worker", sent.append)
    return sent


@pytest.fixture
def inline_worker(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Run the processing task in-process (eagerly, retries included) when an event is enqueued."""
    from webhooks.tasks import process_webhook_event

    sent: list[int] = []

    def run(event_id: int) -> None:
        sent.append(event_id)
        process_webhook_event.apply(args=[event_id])

    monkeypatch.setattr("webhooks.receiving._send_to_worker", run)
    return sent


@pytest.fixture
def deliver(client: Any, django_capture_on_commit_callbacks: Any) -> Callable[..., Any]:
    """deliver(url, signed_webhook): POST the exact signed bytes and run the after-commit callbacks."""

    def _deliver(url: str, webhook: Any) -> Any:
        headers = {k: v for k, v in webhook.headers.items() if k.lower() != "content-type"}
        with django_capture_on_commit_callbacks(execute=True):
            return client.post(
                url, data=webhook.body, content_type=webhook.headers.get("Content-Type", ""), headers=headers
            )

    return _deliver
