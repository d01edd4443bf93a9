"""The house manual's commands: tvl, deposit, check_ledger, seed."""

from __future__ import annotations

import json
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from accounts.models import User
from ledger import services
from ledger.models import Account, Journal
from ledger.tests.factories import FundedPlayerFactory
from ops.actors import SystemActor
from ops.models import AuditRecord, Proposal

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out, stderr=StringIO())
    return out.getvalue()


def test_tvl_prints_the_manuals_three_figures(db: Any) -> None:
    player = FundedPlayerFactory.create(balance_u=3_500_000)
    services.transfer(
        source=services.user_account(user=player, currency="USDC"),
        destination=services.account_get_or_create(
            name="round:20250908:pool", currency="USDC", kind=Account.Kind.ROUND_POOL
        ),
        amount_u=1_000_000,
        type="bet",
        reference="b1",
        actor=SystemActor("test"),
    )
    FundedPlayerFactory.create(balance_u=1_234, currency="USD")
    text = run("tvl")  # every currency in use, like the console's TVL card
    assert "📊 TVL Metrics:" in text
    assert "Locked:              1000000 micro USDC (1.000000 USDC)" in text
    assert "Total Cash:          2500000 micro USDC (2.500000 USDC)" in text
    assert "Pending Withdrawals: 0 micro USDC (0.000000 USDC)" in text
    assert "Total Cash:          1234 cents (12.34 USD)" in text
    assert text.index("\n  USD\n") < text.index("\n  USDC\n")
    every = json.loads(run("tvl", "--json"))
    assert [(t["currency"], t["total_cash_u"]) for t in every] == [("USD", 1_234), ("USDC", 2_500_000)]

    usdc_only = run("tvl", "--currency", "USDC")  # --currency narrows to one
    assert "Locked:              1000000 micro USDC (1.000000 USDC)" in usdc_only and "USD)" not in usdc_only
    assert json.loads(run("tvl", "--json", "--currency", "USDC"))["locked_u"] == 1_000_000
    assert "Total Cash:          1234 cents (12.34 USD)" in run("tvl", "--currency", "USD")
    with pytest.raises(CommandError, match="Unknown currency"):
        run("tvl", "--currency", "DOGE")


def test_tvl_with_no_account_says_so(db: Any) -> None:
    assert run("tvl") == "📊 TVL Metrics:\n  No accounts yet.\n"
    assert json.loads(run("tvl", "--json")) == []


def test_deposit_is_a_proposal_that_a_second_operator_applies(player: Any, make_staff: Any) -> None:
    maker, checker = make_staff(role="finance"), make_staff(role="finance")
    text = run(
        "deposit",
        "--user",
        player.email,
        "--amount",
        "1000000",
        "--reason",
        "PSP outage, ticket 7",
        "--operator",
        maker.email,
    )
    proposal = Proposal.objects.get()
    assert f"Proposal {proposal.pk}: credit 1.000000 USDC" in text and "Nothing moved" in text
    assert Journal.objects.count() == 0 and not Account.objects.filter(owner=player).exists()

    with pytest.raises(CommandError, match="different operator"):
        run("deposit", "--approve", str(proposal.pk), "--operator", maker.email)
    assert Journal.objects.count() == 0

    with pytest.raises(CommandError, match="^refused: approvals/reason-required: Give a reason for approving proposal"):
        run("deposit", "--approve", str(proposal.pk), "--operator", checker.email)  # the checker's own reason
    assert Journal.objects.count() == 0 and Proposal.objects.get().state == Proposal.State.PENDING
    assert not AuditRecord.objects.filter(actor=checker).exists()

    text = run("deposit", "--approve", str(proposal.pk), "--reason", "ticket 7 checked", "--operator", checker.email)
    assert f"approved by {checker.email} (proposed by {maker.email})" in text
    rows = {(r.action, r.actor_label): r for r in AuditRecord.objects.all()}
    assert rows[("approvals.propose", maker.email)].reason == "PSP outage, ticket 7"
    for action in ("approvals.apply", "ledger.operator_credit"):  # the checker's rows carry the checker's reason
        row = rows[(action, checker.email)]
        assert row.reason == "ticket 7 checked", action
        assert row.data["proposal_reason"] == "PSP outage, ticket 7" and row.data["proposed_by"] == maker.email
    assert Proposal.objects.get().decision_reason == "ticket 7 checked"
    journal = Journal.objects.get(type="deposit")
    assert journal.actor == checker and journal.reference == f"operator-credit:{proposal.pk}"
    assert Account.objects.get(owner=player).balance_u == 1_000_000
    with pytest.raises(CommandError, match="already applied"):
        run("deposit", "--approve", str(proposal.pk), "--reason", "again", "--operator", checker.email)
    assert Account.objects.get(owner=player).balance_u == 1_000_000


def test_deposit_proposer_may_apply_alone_only_in_development(player: Any, make_staff: Any, settings: Any) -> None:
    maker = make_staff(role="finance")
    run("deposit", "--user", player.email, "--amount", "500", "--reason", "demo", "--operator", maker.email)
    proposal = Proposal.objects.get()
    settings.ENVIRONMENT = "production"
    with pytest.raises(CommandError, match="different operator"):
        run("deposit", "--approve", str(proposal.pk), "--operator", maker.email)
    assert Journal.objects.count() == 0
    settings.ENVIRONMENT = "development"
    run("deposit", "--approve", str(proposal.pk), "--reason", "demo data", "--operator", maker.email)
    assert Account.objects.get(owner=player).balance_u == 500


def test_deposit_rejected_moves_nothing(player: Any, make_staff: Any) -> None:
    maker, checker = make_staff(role="finance"), make_staff(role="finance")
    run("deposit", "--user", player.email, "--amount", "500", "--reason", "typo?", "--operator", maker.email)
    proposal = Proposal.objects.get()
    with pytest.raises(CommandError, match="reason"):
        run("deposit", "--reject", str(proposal.pk), "--operator", checker.email)
    assert "rejected" in run(
        "deposit", "--reject", str(proposal.pk), "--reason", "no ticket", "--operator", checker.email
    )
    with pytest.raises(CommandError, match="already rejected"):
        run("deposit", "--approve", str(proposal.pk), "--operator", checker.email)
    assert Journal.objects.count() == 0


def test_deposit_amount_zero_shows_the_balance_and_changes_nothing(player: Any, fund: Any) -> None:
    fund(player, 42)
    journals = Journal.objects.count()
    text = run("deposit", "--user", player.email, "--amount", "0")
    assert "available 42" in text
    assert Journal.objects.count() == journals


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--user", "nobody@example.com", "--amount", "5"], "No user"),
        (["--amount", "-5"], "zero .* or positive"),
        (["--amount", "5", "--currency", "DOGE"], "Unknown currency"),
        (["--amount", "5", "--operator", "ghost@example.com", "--reason", "r"], "No user"),
        (["--amount", "5", "--reason", "r"], "--operator is required"),
        (["--amount", "5", "--operator", "finance-x@example.com"], "reason"),
        (
            [
                "--user",
                "finance-x@example.com",
                "--amount",
                "5",
                "--reason",
                "r",
                "--operator",
                "finance-y@example.com",
            ],
            "operator account",
        ),
        (["--approve", "999", "--operator", "finance-x@example.com"], "No ledger.operator_credit proposal 999"),
    ],
)
def test_deposit_refusals_are_one_line_and_change_nothing(
    player: Any, make_staff: Any, args: list[str], message: str
) -> None:
    make_staff(role="finance", email="finance-x@example.com")
    make_staff(role="finance", email="finance-y@example.com")
    if "--user" not in args and "--approve" not in args:
        args = ["--user", player.email, *args]
    with pytest.raises(CommandError, match=message):
        run("deposit", *args)
    assert Journal.objects.count() == 0 and Account.objects.filter(balance_u__gt=0).count() == 0
    assert not Proposal.objects.exists()


def test_check_ledger_passes_then_reports_a_breach(player: Any, fund: Any, db_owner: Any) -> None:
    fund(player, 100)
    assert run("check_ledger").startswith("OK:")
    with db_owner():  # a stored balance drifts from its entries (planted as the owner; the app role cannot)
        Account.objects.filter(owner=player).update(balance_u=150)
    with pytest.raises(CommandError, match="breach"):
        run("check_ledger", "--record")
    from ledger.models import LedgerBreach

    breach = LedgerBreach.objects.get(invariant="balance_equals_entries")
    assert "stores 150 but its entries sum to 100" in breach.detail


def test_seed_demo_is_idempotent(settings: Any) -> None:
    settings.ENVIRONMENT = "development"  # the only environment that allows the demo accounts
    run("seed", "--demo")
    snapshot = (User.objects.count(), Journal.objects.count(), sum(Account.objects.values_list("balance_u", flat=True)))
    run("seed", "--demo")
    assert (
        User.objects.count(),
        Journal.objects.count(),
        sum(Account.objects.values_list("balance_u", flat=True)),
    ) == snapshot
    assert User.objects.filter(is_staff=True, groups__name="finance").count() == 2


def api_login(email: str, password: str) -> Any:
    from rest_framework.test import APIClient

    return APIClient().post("/v1/auth/login", {"email": email, "password": password}, format="json")


def test_seeded_players_log_in(settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """In development with the demo players' password (printed); elsewhere with --password-env's, or refused."""
    from accounts.demo import PLAYER_PASSWORD

    settings.ENVIRONMENT = "development"
    text = run("seed", "--users", "2")
    assert "created 2 player(s): seed-player0@example.com, seed-player1@example.com" in text
    assert f"password: {PLAYER_PASSWORD}" in text
    response = api_login("seed-player1@example.com", PLAYER_PASSWORD)
    assert response.status_code == 200 and response.json()["token"]
    assert api_login("seed-player1@example.com", "wrong-password").status_code == 401

    settings.ENVIRONMENT = "staging"  # no published password outside development
    with pytest.raises(CommandError, match="outside development needs --password-env"):
        run("seed", "--users", "1")
    assert User.objects.filter(email__startswith="seed-player").count() == 2
    monkeypatch.setenv("SEED_PW", PLAYER_PASSWORD)
    with pytest.raises(CommandError, match="demo password"):
        run("seed", "--users", "1", "--password-env", "SEED_PW")
    monkeypatch.setenv("SEED_PW", "Correct-Horse-Battery-91")
    text = run("seed", "--users", "1", "--password-env", "SEED_PW")
    assert "seed-player2@example.com" in text and "Correct-Horse" not in text
    assert api_login("seed-player2@example.com", "Correct-Horse-Battery-91").status_code == 200


def test_seed_users_and_refusals(settings: Any) -> None:
    settings.ENVIRONMENT = "development"
    assert "created 3 player(s)" in run("seed", "--users", "3")
    with pytest.raises(CommandError, match="Say what to create"):
        run("seed")
    settings.BOOTSTRAP_ENABLED = False
    with pytest.raises(CommandError, match="disabled"):
        run("seed", "--users", "1")
