"""The house manual's commands: lock_round, settle_round (AUTO, forced, dry run, twice), through the services."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from ledger.models import Account, Entry
from ops.models import AuditRecord, Proposal
from rounds.models import Round

pytestmark = pytest.mark.django_db


def test_lock_and_settle_commands(
    open_round: Callable[..., Any],
    place: Callable[..., Any],
    prices: Any,
    clock: Any,
    capsys: Any,
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


def test_forced_settle_is_proposed_by_one_operator_and_applied_by_another(
    open_round: Callable[..., Any],
    place: Callable[..., Any],
    make_staff: Callable[..., Any],
    capsys: Any,
    clock: Any,
    assert_ledger_ok: Callable[[], None],
) -> None:
    alice, bob = make_staff(role="finance"), make_staff(role="finance")
    round_obj = open_round("20250908")
    up = place(round_obj, "UP", 1_000_000)
    place(round_obj, "DOWN", 1_000_000)
    with pytest.raises(CommandError, match="rounds/not-locked"):
        call_command(
            "settle_round",
            "--code",
            round_obj.code,
            "--result",
            "UP",
            "--reason",
            "x",
            "--evidence",
            "e",
            "--operator",
            alice.email,
        )
    call_command("lock_round", "--code", round_obj.code)
    with pytest.raises(CommandError, match="--operator is required"):
        call_command("settle_round", "--code", round_obj.code, "--result", "UP", "--reason", "x", "--evidence", "e")
    with pytest.raises(CommandError, match="rounds/too-early"):  # locked, but the market has not closed
        call_command(
            "settle_round",
            "--code",
            round_obj.code,
            "--result",
            "UP",
            "--reason",
            "x",
            "--evidence",
            "e",
            "--operator",
            alice.email,
        )
    clock.set(round_obj.close_at)
    with pytest.raises(CommandError, match="approvals/reason-required"):
        call_command(
            "settle_round", "--code", round_obj.code, "--result", "UP", "--evidence", "e", "--operator", alice.email
        )
    assert not Proposal.objects.exists()

    call_command("settle_round", "--code", round_obj.code, "--result", "VOID", "--dry-run")
    assert "DRY RUN" in capsys.readouterr().out
    assert Round.objects.get(pk=round_obj.pk).status == Round.Status.LOCKED

    call_command(
        "settle_round",
        "--code",
        round_obj.code,
        "--result",
        "UP",
        "--reason",
        "oracle outage",
        "--evidence",
        "nasdaq.com",
        "--operator",
        alice.email,
    )
    proposal = Proposal.objects.get()
    assert f"Proposal {proposal.pk}: force UP" in capsys.readouterr().out
    assert Round.objects.get(pk=round_obj.pk).status == Round.Status.LOCKED  # one operator: nothing applied
    assert Account.objects.get(pk=up.account_id).balance_u == 0
    with pytest.raises(CommandError, match="approvals/second-operator-required"):
        call_command("settle_round", "--approve", str(proposal.pk), "--operator", alice.email)
    assert Round.objects.get(pk=round_obj.pk).status == Round.Status.LOCKED

    with pytest.raises(CommandError, match="approvals/reason-required"):
        call_command("settle_round", "--approve", str(proposal.pk), "--operator", bob.email)
    assert Round.objects.get(pk=round_obj.pk).status == Round.Status.LOCKED

    call_command("settle_round", "--approve", str(proposal.pk), "--reason", "close checked", "--operator", bob.email)
    assert f"approved by {bob.email} (proposed by {alice.email})" in capsys.readouterr().out
    settle = AuditRecord.objects.get(action="rounds.settle")
    assert (settle.actor_label, settle.reason) == (bob.email, "close checked")  # the checker's own reason
    assert settle.data["forced"]["reason"] == "oracle outage"  # the maker's, with the forced result
    settled = Round.objects.get(pk=round_obj.pk)
    assert settled.forced is not None
    assert settled.result == "UP" and settled.forced["operator"] == alice.email
    assert settled.forced["approved_by"] == bob.email
    assert_ledger_ok()

    entries = Entry.objects.count()
    with pytest.raises(CommandError, match="already SETTLED with result UP"):
        call_command(
            "settle_round",
            "--code",
            round_obj.code,
            "--result",
            "DOWN",
            "--reason",
            "x",
            "--evidence",
            "e",
            "--operator",
            bob.email,
        )
    with pytest.raises(CommandError, match="already SETTLED with result UP"):
        call_command(
            "settle_round", "--code", round_obj.code, "--result", "VOID", "--reason", "x", "--operator", bob.email
        )
    assert Entry.objects.count() == entries


def test_void_from_the_command_line_is_the_one_operator_emergency_stop(
    open_round: Callable[..., Any],
    place: Callable[..., Any],
    make_staff: Callable[..., Any],
    capsys: Any,
    assert_ledger_ok: Callable[[], None],
) -> None:
    finance = make_staff(role="finance")
    round_obj = open_round("20250908")  # still OPEN
    bets = [place(round_obj, "UP", 1_000_000), place(round_obj, "DOWN", 2_000_000)]
    with pytest.raises(CommandError, match="reason"):
        call_command("settle_round", "--code", round_obj.code, "--result", "VOID", "--operator", finance.email)
    assert Round.objects.get(pk=round_obj.pk).status == Round.Status.OPEN
    call_command(
        "settle_round",
        "--code",
        round_obj.code,
        "--result",
        "VOID",
        "--reason",
        "feed corrupted",
        "--operator",
        finance.email,
    )
    voided = Round.objects.get(pk=round_obj.pk)
    assert (voided.status, voided.void_reason) == (Round.Status.VOID, "CANCELLED")
    assert [Account.objects.get(pk=b.account_id).balance_u for b in bets] == [1_000_000, 2_000_000]
    call_command(
        "settle_round", "--code", round_obj.code, "--result", "VOID", "--reason", "again", "--operator", finance.email
    )  # already VOID: exit 0, nothing moves
    assert "Already settled: round 20250908 is VOID" in capsys.readouterr().out
    from prometheus_client import REGISTRY, generate_latest

    assert 'round_voids_total{reason="CANCELLED"} 1.0' in generate_latest(REGISTRY).decode()
    assert_ledger_ok()


def test_unknown_round_is_one_readable_line() -> None:
    with pytest.raises(CommandError, match="rounds/not-found: There is no round 20250908"):
        call_command("lock_round", "--code", "20250908")
