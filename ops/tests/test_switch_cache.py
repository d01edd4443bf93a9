"""The maintenance gate reads its switch at most SWITCH_CACHE_S old (per process); every other switch read,
those that guard money inside its transaction, stays a fresh database read."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from ops.actors import SystemActor
from ops.models import Switch
from ops.switches import switch_is_on, switch_is_on_cached, switch_set

pytestmark = pytest.mark.django_db
OPERATOR = SystemActor("cli:test")


def _set_elsewhere(name: str, *, on: bool) -> None:
    """Change a switch as another process would: this process's cache is not told."""
    with connection.cursor() as cursor:
        cursor.execute('UPDATE ops_switch SET "on" = %s WHERE name = %s', [on, name])


def test_a_switch_turned_on_elsewhere_reaches_the_gate_within_the_bound(ttl_clock: Any, settings: Any) -> None:
    assert settings.SWITCH_CACHE_S == 1.0  # the documented default
    switch_set(name=Switch.Name.MAINTENANCE, on=False, reason="ready", actor=OPERATOR)  # the row exists
    assert switch_is_on_cached(Switch.Name.MAINTENANCE) is False
    _set_elsewhere(Switch.Name.MAINTENANCE, on=True)
    ttl_clock.advance(settings.SWITCH_CACHE_S - 0.001)
    with CaptureQueriesContext(connection) as captured:
        assert switch_is_on_cached(Switch.Name.MAINTENANCE) is False  # the gate's answer, less than the bound old
    assert captured.captured_queries == []
    ttl_clock.advance(0.001)
    assert switch_is_on_cached(Switch.Name.MAINTENANCE) is True
    _set_elsewhere(Switch.Name.MAINTENANCE, on=False)
    assert switch_is_on_cached(Switch.Name.MAINTENANCE) is True
    ttl_clock.advance(settings.SWITCH_CACHE_S)
    assert switch_is_on_cached(Switch.Name.MAINTENANCE) is False


def test_the_process_that_changes_a_switch_gates_on_it_at_once(ttl_clock: Any) -> None:
    assert switch_is_on_cached(Switch.Name.MAINTENANCE) is False
    switch_set(name=Switch.Name.MAINTENANCE, on=True, reason="cutover", actor=OPERATOR)
    assert switch_is_on_cached(Switch.Name.MAINTENANCE) is True  # the clock has not moved
    switch_set(name=Switch.Name.MAINTENANCE, on=False, reason="done", actor=OPERATOR)
    assert switch_is_on_cached(Switch.Name.MAINTENANCE) is False


@pytest.mark.parametrize("name", [Switch.Name.PAYOUT_FREEZE, Switch.Name.BETTING_PAUSED, Switch.Name.PAYOUT_AUTO_PAUSE])
def test_money_guarding_switches_are_read_fresh_even_after_a_gate_read(name: str, ttl_clock: Any) -> None:
    assert switch_is_on_cached(name) is False  # a gate read of it cached "off" in this process...
    switch_set(name=name, on=True, reason="stop", actor=OPERATOR)
    assert switch_is_on(name) is True  # ...does not delay the money paths' read: on at once
    switch_set(name=name, on=False, reason="go", actor=OPERATOR)
    assert switch_is_on(name) is False


def test_the_bound_zero_reads_the_gate_fresh(settings: Any, ttl_clock: Any) -> None:
    settings.SWITCH_CACHE_S = 0
    assert switch_is_on_cached(Switch.Name.MAINTENANCE) is False
    switch_set(name=Switch.Name.MAINTENANCE, on=True, reason="cutover", actor=OPERATOR)
    assert switch_is_on_cached(Switch.Name.MAINTENANCE) is True
