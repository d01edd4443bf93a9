"""The house manual's commands: lock_round, settle_round (AUTO, forced, dry run, twice), through the services."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from ledger.models import Entry
from rounds.models import Round

pytestmark = pytest.mark.django_db


def test_lock_and_settle_commands(
    open_round: Callable[..., Any], place: Callable[..., Any], prices: Any, clock: Any, capsys: Any,
) -> None:
    round_obj = open_round("20250908")
    place(round_obj, "UP", 1_000_000)
    place(round_obj, "DOWN", 2_000_000)
    call_command("lock_round", "--code", round_obj.code)
    assert "Locked round 20250908" in capsys.readouterr().out
    call_command("lock_round", "--code", round_obj.code)
    assert "Nothing to do" in capsys.readouterr().out

    with pytest.raises(CommandError, match="rounds/too-early"):
        call_command("settle_round", "--code", round_obj.code, "--result", "AUTO")
    clock.set(round_obj.settle_after)
    prices.set(round_obj.open_at.date(), "100.5")
    call_command("settle_round", "--code", round_obj.code, "--result", "AUTO", "--dry-run")
    preview = capsys.readouterr().out
    assert "DRY RUN" in preview and "close:           100.5" in preview and "fee_u:           30000" in preview
    assert Round.objects.get(pk=round_obj.pk).status == Round.Status.LOCKED
    call_command("settle_round", "--code", round_obj.code, "--result", "AUTO")
    out = capsys.readouterr().out
    assert "Settled round 20250908 is SETTLED" in out and "result:          UP" in out
    entries = Entry.objects.count()
    call_command("settle_round", "--code", round_obj.code, "--result", "AUTO")  # the manual's re-check
    assert "Already settled" in capsys.readouterr().out
    assert Entry.objects.count() == entries


def test_forced_settle_needs_reason_and_lock(
    open_round: Callable[..., Any], place: Callable[..., Any], make_staff: Callable[..., Any], capsys: Any,
) -> None:
    round_obj = open_round("20250908")
    place(round_obj, "UP", 1_000_000)
    place(round_obj, "DOWN", 1_000_000)
    with pytest.raises(CommandError, match="rounds/not-locked"):
        call_command("settle_round", "--code", round_obj.code, "--result", "UP", "--reason", "x")
    call_command("lock_round", "--code", round_obj.code)
    with pytest.raises(CommandError, match="rounds/reason-required"):
        call_command("settle_round", "--code", round_obj.code, "--result", "UP")
    assert Round.objects.get(pk=round_obj.pk).status == Round.Status.LOCKED

    call_command("settle_round", "--code", round_obj.code, "--result", "VOID", "--dry-run")
    assert "DRY RUN" in capsys.readouterr().out
    assert Round.objects.get(pk=round_obj.pk).status == Round.Status.LOCKED

    operator = make_staff(role="finance")
    call_command("settle_round", "--code", round_obj.code, "--result", "DOWN", "--reason", "oracle outage",
                 "--evidence", "nasdaq.com", "--operator", operator.email)
    settled = Round.objects.get(pk=round_obj.pk)
    assert settled.result == "DOWN" and settled.forced["operator"] == operator.email


def test_unknown_round_is_one_readable_line() -> None:
    with pytest.raises(CommandError, match="rounds/not-found: There is no round 20250908"):
        call_command("lock_round", "--code", "20250908")
