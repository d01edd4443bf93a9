"""A withdrawal's destination (issue 20, item 1): required, checked per rail where the withdrawal is requested,
and checked again by the provider before any PSP call.

Every attack is refused with nothing held: balances, rows and states exactly as they were. A payout whose stored
destination is empty or malformed (a row from before destinations were required) is refused by its provider with
zero HTTP calls to the PSP, and goes to manual review with its funds still held. The good paths go through the
real SDKs to the local stub, which is asserted to have received the player's own counterparty.
"""

from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from ledger.models import Journal
from payouts.models import PayoutAttempt, Withdrawal
from payouts.providers import get_provider
from payouts.services import payout_submit, withdrawal_approve, withdrawal_request
from webhooks.stub import STUB_CONNECTED_ACCOUNT

from .helpers import (
    ADYEN_IBAN,
    ADYEN_INSTRUMENT,
    balances,
    destination_for,
    send_adyen_transfer,
    send_stripe_payout_event,
    snapshot,
)

pytestmark = pytest.mark.django_db

URL = "/v1/withdrawals"
AMOUNT_U = 5_000_000
INVALID = "payouts/invalid-destination"

ATTACKS = [
    # (provider, destination sent, why it is refused)
    pytest.param("adyen", {}, "needs a destination", id="adyen-empty-object"),
    pytest.param("stripe", {}, "needs a destination", id="stripe-empty-object"),
    pytest.param("adyen", None, "needs a destination", id="adyen-missing"),
    pytest.param("stripe", None, "needs a destination", id="stripe-missing"),
    pytest.param("adyen", {"transfer_instrument_id": ""}, "non-empty", id="adyen-empty-instrument"),
    pytest.param("adyen", {"transfer_instrument_id": "   "}, "non-empty", id="adyen-blank-instrument"),
    pytest.param("adyen", {"transfer_instrument_id": "se-1"}, "not a transfer instrument", id="adyen-bad-instrument"),
    pytest.param("adyen", {"transfer_instrument_id": 42}, "non-empty string", id="adyen-instrument-not-text"),
    pytest.param(
        "adyen",
        {"counterparty": {"transferInstrumentId": ""}},
        "unknown field(s) counterparty",
        id="adyen-raw-empty-counterparty",
    ),
    pytest.param("adyen", {"bank_account": {"iban": ADYEN_IBAN}}, "holder_name", id="adyen-iban-without-holder"),
    pytest.param("adyen", {"bank_account": {"holder_name": "Jane Doe"}}, "iban", id="adyen-holder-without-iban"),
    pytest.param(
        "adyen",
        {"bank_account": {"holder_name": "Jane Doe", "iban": "NL91ABNA0417164301"}},
        "check digits",
        id="adyen-iban-bad-checksum",
    ),
    pytest.param("adyen", {"bank_account": "NL91ABNA0417164300"}, "must be an object", id="adyen-bank-not-object"),
    pytest.param(
        "adyen",
        {"transfer_instrument_id": ADYEN_INSTRUMENT, "bank_account": {"holder_name": "J", "iban": ADYEN_IBAN}},
        "not both",
        id="adyen-two-destinations",
    ),
    pytest.param("adyen", {"connected_account": STUB_CONNECTED_ACCOUNT}, "unknown field", id="wrong-rail-adyen"),
    pytest.param("stripe", {"transfer_instrument_id": ADYEN_INSTRUMENT}, "unknown field", id="wrong-rail-stripe"),
    pytest.param(
        "stripe", {"address": "0x52908400098527886E0F7030069857D2E4169EE7"}, "unknown field", id="chain-to-stripe"
    ),
    pytest.param("stripe", {"connected_account": ""}, "non-empty", id="stripe-empty-acct"),
    pytest.param("stripe", {"connected_account": "acct_"}, "not a connected account", id="stripe-acct-prefix-only"),
    pytest.param("stripe", {"connected_account": "ba_1PSPStubPlayer0001"}, "not a connected", id="stripe-bank-id"),
    pytest.param("stripe", {"connected_account": "acct_1PSP-Stub/../x000"}, "not a connected", id="stripe-acct-junk"),
    pytest.param(
        "stripe",
        {"connected_account": STUB_CONNECTED_ACCOUNT, "bank_account": "ba_1"},
        "unknown field(s) bank_account",
        id="stripe-extra-field",
    ),
]


def _post(client: Any, provider: str, destination: Any, key: str = "dest-1") -> Any:
    body: dict[str, Any] = {"amount_u": AMOUNT_U, "currency": "USDC", "provider": provider}
    if destination is not None:
        body["destination"] = destination
    return client.post(URL, body, format="json", HTTP_IDEMPOTENCY_KEY=key)


@pytest.mark.parametrize(("provider", "destination", "why"), ATTACKS)
def test_the_api_refuses_a_bad_destination_and_holds_nothing(
    funded_player: Any, api_client_for: Any, provider: str, destination: Any, why: str
) -> None:
    before, money = snapshot(), balances(funded_player)
    response = _post(api_client_for(funded_player), provider, destination)
    assert response.status_code == 400, response.content
    assert response["Content-Type"] == "application/problem+json"
    problem = response.json()
    assert problem["type"] == INVALID
    assert why in problem["detail"] and "Nothing was held" in problem["detail"].replace("nothing", "Nothing")
    assert snapshot() == before
    assert balances(funded_player) == money
    assert not Withdrawal.objects.exists()


@pytest.mark.parametrize(("provider", "destination", "why"), ATTACKS)
def test_the_service_refuses_the_same_and_holds_nothing(
    funded_player: Any, provider: str, destination: Any, why: str
) -> None:
    from payouts.errors import InvalidDestination

    before, money = snapshot(), balances(funded_player)
    with pytest.raises(InvalidDestination) as refused:
        withdrawal_request(
            user=funded_player, amount_u=AMOUNT_U, currency="USDC", provider=provider, destination=destination
        )
    assert why in refused.value.detail
    assert snapshot() == before and balances(funded_player) == money


@pytest.mark.parametrize(
    ("args", "why"),
    [
        ([], "needs a destination"),
        (["--provider", "stripe"], "needs a destination"),
        (["--transfer-instrument", ""], "needs a destination"),
        (["--transfer-instrument", "se-1"], "not a transfer instrument"),
        (["--iban", ADYEN_IBAN], "holder_name"),
        (["--provider", "stripe", "--connected-account", "acct_x"], "not a connected account"),
        (["--provider", "stripe", "--transfer-instrument", ADYEN_INSTRUMENT], "unknown field"),
        (["--connected-account", STUB_CONNECTED_ACCOUNT], "unknown field"),
        (["--provider", "stripe", "--connected-account", "acct_x", "--dry-run"], "not a connected account"),
    ],
)
def test_the_withdraw_command_refuses_in_one_line_and_holds_nothing(
    funded_player: Any, args: list[str], why: str
) -> None:
    before, money = snapshot(), balances(funded_player)
    with pytest.raises(CommandError) as refused:
        call_command("withdraw", "--user", funded_player.email, "--amount", str(AMOUNT_U), *args, stdout=StringIO())
    line = str(refused.value)
    assert "\n" not in line and line.startswith(f"refused: {INVALID}:") and why in line
    assert snapshot() == before and balances(funded_player) == money


def test_the_stored_destination_is_the_checked_snapshot(funded_player: Any, api_client_for: Any) -> None:
    response = _post(
        api_client_for(funded_player),
        "adyen",
        {"bank_account": {"holder_name": "  Jane Doe ", "iban": "nl91 abna 0417 1643 00"}},
    )
    assert response.status_code == 201, response.content
    stored = Withdrawal.objects.get().destination
    assert stored == {"bank_account": {"holder_name": "Jane Doe", "iban": ADYEN_IBAN}}
    assert response.json()["destination"] == stored
    label = get_provider("adyen").destination_label(stored)
    assert label == f"bank account {ADYEN_IBAN} (Jane Doe)"


# --- The provider refuses before calling the PSP: no empty or default counterparty, ever ----------------------


def _approved_then_emptied(player: Any, finance: Any, provider: str, stored: Any) -> Withdrawal:
    """An approved withdrawal whose stored destination is `stored`: a row from before destinations were required
    (they were stored as `{}`), or one written by hand. The column is not one the red line guards."""
    withdrawal = withdrawal_request(
        user=player, amount_u=AMOUNT_U, currency="USDC", provider=provider, destination=destination_for(provider)
    )
    withdrawal_approve(withdrawal_id=withdrawal.pk, acting_user=finance)
    Withdrawal.objects.filter(pk=withdrawal.pk).update(destination=stored)
    return withdrawal


@pytest.mark.parametrize(
    ("provider", "stored"),
    [
        ("adyen", {}),
        ("adyen", {"transfer_instrument_id": ""}),
        ("adyen", {"counterparty": {"transferInstrumentId": ""}}),
        ("adyen", {"counterparty": {}}),
        ("stripe", {}),
        ("stripe", {"bank_account": "ba_1PlatformOwnBank00"}),
        ("stripe", {"connected_account": ""}),
    ],
)
def test_a_payout_without_a_valid_destination_never_reaches_the_psp(
    stub: Any, funded_player: Any, finance: Any, settings: Any, provider: str, stored: Any, assert_ledger_ok: Any
) -> None:
    settings.ADYEN_TRANSFER_INSTRUMENT_ID = ADYEN_INSTRUMENT  # an old deployment's default: never used for anyone
    withdrawal = _approved_then_emptied(funded_player, finance, provider, stored)
    money = balances(funded_player)

    run = payout_submit(withdrawal_id=withdrawal.pk)

    assert run.status == "refused" and "destination" in run.detail
    assert stub.requests == []  # zero HTTP calls to the PSP
    withdrawal.refresh_from_db()
    assert withdrawal.state == Withdrawal.State.PAYOUT_FAILED  # manual review; nothing paid, nothing released
    [attempt] = withdrawal.attempts.all()
    assert attempt.outcome == PayoutAttempt.Outcome.REFUSED and attempt.psp_reference == ""
    assert balances(funded_player) == money and money.held_u == AMOUNT_U
    assert not Journal.objects.filter(reference=f"withdrawal:{withdrawal.pk}:payout").exists()
    assert_ledger_ok()


def test_the_adyen_request_body_has_no_default_counterparty(settings: Any) -> None:
    from payouts.errors import InvalidDestination

    settings.ADYEN_TRANSFER_INSTRUMENT_ID = ADYEN_INSTRUMENT
    adyen = get_provider("adyen")
    for stored in ({}, None, {"transfer_instrument_id": ""}):
        with pytest.raises(InvalidDestination):
            adyen.counterparty(stored)  # type: ignore[attr-defined]


# --- The good paths, through the real SDKs to the stub --------------------------------------------------------


def test_stripe_connect_pays_the_players_connected_account_then_its_payout(
    stub: Any, funded_player: Any, finance: Any, api_client_for: Any, assert_ledger_ok: Any
) -> None:
    account = "acct_1JaneDoeConnect0001"
    stub.add_connected_account(account)
    response = _post(api_client_for(funded_player), "stripe", {"connected_account": account})
    assert response.status_code == 201, response.content
    withdrawal = Withdrawal.objects.get(pk=response.json()["id"])
    withdrawal_approve(withdrawal_id=withdrawal.pk, acting_user=finance)

    assert payout_submit(withdrawal_id=withdrawal.pk).status == "accepted"
    withdrawal.refresh_from_db()

    lookup, transfer_call, payout_call = stub.requests
    assert (lookup.method, lookup.path, lookup.headers.get("stripe-account")) == ("GET", "/v1/transfers", None)
    assert (transfer_call.method, transfer_call.path) == ("POST", "/v1/transfers")
    assert "stripe-account" not in transfer_call.headers  # from the platform's balance...
    assert transfer_call.body["destination"] == account  # ...to the player's connected account
    assert (transfer_call.body["amount"], transfer_call.body["currency"]) == (str(AMOUNT_U), "usdc")
    assert transfer_call.idempotency_key == f"wd-{withdrawal.pk}:transfer:0"
    assert (payout_call.method, payout_call.path) == ("POST", "/v1/payouts")
    assert payout_call.headers["stripe-account"] == account  # the connected account's payout, never the platform's
    assert "destination" not in payout_call.body  # to that account's own bank account
    assert payout_call.idempotency_key == withdrawal.idempotency_key
    [payout] = stub.objects("stripe_payout")
    assert stub.owner(payout["id"]) == account and stub.connected_balance(account, "usdc") == 0
    assert withdrawal.psp_reference == payout["id"]

    # Retried with the same attempt (e.g. after a timeout): both calls replay; nothing is sent twice.
    again = get_provider("stripe").submit(withdrawal=withdrawal, idempotency_key=withdrawal.idempotency_key)
    assert (again.outcome, again.psp_reference) == ("accepted", payout["id"])
    assert len(stub.objects("stripe_transfer")) == 1 and len(stub.objects("stripe_payout")) == 1

    # Reconciliation asks the connected account; the paid webhook (Connect) settles it once.
    status = get_provider("stripe").status(
        withdrawal=withdrawal, idempotency_key=withdrawal.idempotency_key, psp_reference=withdrawal.psp_reference
    )
    assert (status.status, status.psp_reference) == ("pending", payout["id"])
    assert send_stripe_payout_event(payout, "payout.paid").json()["result"] == "paid"
    withdrawal.refresh_from_db()
    assert withdrawal.state == Withdrawal.State.PAID
    assert balances(funded_player).held_u == 0
    assert_ledger_ok()


def test_a_stripe_payout_to_an_account_the_platform_does_not_have_is_refused_by_stripe(
    stub: Any, funded_player: Any, finance: Any
) -> None:
    """Well-formed but not one of ours: Stripe's own 400 (no such destination); nothing paid, funds held."""
    withdrawal = withdrawal_request(
        user=funded_player,
        amount_u=AMOUNT_U,
        currency="USDC",
        provider="stripe",
        destination={"connected_account": "acct_1NotConnectedHere01"},
    )
    withdrawal_approve(withdrawal_id=withdrawal.pk, acting_user=finance)
    money = balances(funded_player)
    run = payout_submit(withdrawal_id=withdrawal.pk)
    assert run.status == "refused" and "No such destination" in run.detail
    assert [(r.method, r.path) for r in stub.requests] == [("GET", "/v1/transfers"), ("POST", "/v1/transfers")]
    assert stub.objects("stripe_transfer") == [] and stub.objects("stripe_payout") == []
    withdrawal.refresh_from_db()
    assert withdrawal.state == Withdrawal.State.PAYOUT_FAILED and balances(funded_player) == money


@pytest.mark.parametrize(
    ("destination", "counterparty"),
    [
        (
            {"bank_account": {"holder_name": "Jane Doe", "iban": ADYEN_IBAN}},
            {
                "bankAccount": {
                    "accountHolder": {"fullName": "Jane Doe"},
                    "accountIdentification": {"type": "iban", "iban": ADYEN_IBAN},
                }
            },
        ),
        ({"transfer_instrument_id": ADYEN_INSTRUMENT}, {"transferInstrumentId": ADYEN_INSTRUMENT}),
    ],
    ids=["third-party-iban", "own-instrument"],
)
def test_adyen_pays_the_players_own_counterparty(
    stub: Any,
    funded_player: Any,
    finance: Any,
    settings: Any,
    destination: dict[str, Any],
    counterparty: dict[str, Any],
    assert_ledger_ok: Any,
) -> None:
    settings.ADYEN_TRANSFER_INSTRUMENT_ID = "SE999DEFAULTNEVERUSED0000"
    withdrawal = withdrawal_request(
        user=funded_player, amount_u=AMOUNT_U, currency="USDC", provider="adyen", destination=destination
    )
    withdrawal_approve(withdrawal_id=withdrawal.pk, acting_user=finance)
    assert payout_submit(withdrawal_id=withdrawal.pk).status == "accepted"
    [call] = stub.requests
    assert call.path.endswith("/transfers") and call.body["counterparty"] == counterparty
    assert call.body["amount"] == {"currency": "USDC", "value": AMOUNT_U}
    [transfer] = stub.objects("adyen_transfer")
    assert transfer["counterparty"] == counterparty
    assert send_adyen_transfer(transfer, "booked").json()["result"] == "paid"
    withdrawal.refresh_from_db()
    assert withdrawal.state == Withdrawal.State.PAID
    assert_ledger_ok()


# --- Operators see where each withdrawal is paid -------------------------------------------------------------


def test_the_admin_shows_the_destination_in_the_list_and_the_detail(
    funded_player: Any, finance: Any, make_player: Any, fund: Any
) -> None:
    from django.test import Client

    iban = withdrawal_request(
        user=funded_player,
        amount_u=AMOUNT_U,
        currency="USDC",
        provider="adyen",
        destination={"bank_account": {"holder_name": "Jane Doe", "iban": ADYEN_IBAN}},
    )
    connect = withdrawal_request(
        user=funded_player, amount_u=AMOUNT_U, currency="USDC", provider="stripe", destination=destination_for("stripe")
    )
    old = withdrawal_request(
        user=funded_player, amount_u=AMOUNT_U, currency="USDC", provider="adyen", destination=destination_for("adyen")
    )
    Withdrawal.objects.filter(pk=old.pk).update(destination={})  # a row from before destinations were required
    client = Client()
    client.force_login(finance)

    listing = client.get("/admin/payouts/withdrawal/").content.decode()
    assert "paid to" in listing.lower()
    assert f"bank account {ADYEN_IBAN} (Jane Doe)" in listing
    assert f"connected account {STUB_CONNECTED_ACCOUNT}" in listing
    assert "no valid destination" in listing
    detail = client.get(f"/admin/payouts/withdrawal/{connect.pk}/change/").content.decode()
    assert f"connected account {STUB_CONNECTED_ACCOUNT}" in detail
    old_detail = client.get(f"/admin/payouts/withdrawal/{old.pk}/change/").content.decode()
    assert "no valid destination (the payout is refused before the PSP is called)" in old_detail
    assert iban.pk != connect.pk


def test_a_retry_after_a_declined_payout_never_transfers_twice(
    stub: Any, funded_player: Any, finance: Any, assert_ledger_ok: Any
) -> None:
    """The payout on the connected account is declined after the transfer landed: the money is on the player's
    account. The operator's retry (a new attempt, new key) pays out that money; it never transfers again."""
    from payouts.services import withdrawal_resolve

    withdrawal = withdrawal_request(
        user=funded_player, amount_u=AMOUNT_U, currency="USDC", provider="stripe", destination=destination_for("stripe")
    )
    withdrawal_approve(withdrawal_id=withdrawal.pk, acting_user=finance)
    stub.set_mode("stripe_payout", "decline", times=1)
    run = payout_submit(withdrawal_id=withdrawal.pk)
    assert run.status == "declined" and "after transfer tr_" in run.detail
    assert len(stub.objects("stripe_transfer")) == 1
    assert stub.connected_balance(STUB_CONNECTED_ACCOUNT, "usdc") == AMOUNT_U  # on the player's account

    withdrawal_resolve(withdrawal_id=withdrawal.pk, acting_user=finance, decision="retry", reason="bank fixed")
    assert payout_submit(withdrawal_id=withdrawal.pk).status == "accepted"

    assert len(stub.objects("stripe_transfer")) == 1  # found by its transfer group, not made again
    [payout] = stub.objects("stripe_payout")
    assert stub.owner(payout["id"]) == STUB_CONNECTED_ACCOUNT
    assert stub.connected_balance(STUB_CONNECTED_ACCOUNT, "usdc") == 0
    transfers_posted = [r for r in stub.requests if (r.method, r.path) == ("POST", "/v1/transfers")]
    assert len(transfers_posted) == 1
    withdrawal.refresh_from_db()
    assert withdrawal.state == Withdrawal.State.PAYOUT_SUBMITTED and withdrawal.psp_reference == payout["id"]
    assert_ledger_ok()


def test_a_refund_is_refused_while_the_money_sits_on_the_players_connected_account(
    stub: Any, funded_player: Any, finance: Any
) -> None:
    """Declined after the transfer landed: releasing the held funds as well would pay the player twice."""
    from payouts.errors import InvalidTransition
    from payouts.services import withdrawal_resolve

    withdrawal = withdrawal_request(
        user=funded_player, amount_u=AMOUNT_U, currency="USDC", provider="stripe", destination=destination_for("stripe")
    )
    withdrawal_approve(withdrawal_id=withdrawal.pk, acting_user=finance)
    stub.set_mode("stripe_payout", "decline", times=1)
    assert payout_submit(withdrawal_id=withdrawal.pk).status == "declined"
    [transfer] = stub.objects("stripe_transfer")
    before, money = snapshot(), balances(funded_player)

    with pytest.raises(InvalidTransition) as refused:
        withdrawal_resolve(withdrawal_id=withdrawal.pk, acting_user=finance, decision="refund_failed", reason="r")
    assert transfer["id"] in refused.value.detail and "pay twice" in refused.value.detail
    assert snapshot() == before and balances(funded_player) == money
    withdrawal.refresh_from_db()
    assert withdrawal.state == Withdrawal.State.PAYOUT_FAILED


def test_a_refund_is_allowed_when_the_transfer_itself_was_declined(stub: Any, funded_player: Any, finance: Any) -> None:
    from payouts.services import withdrawal_resolve

    withdrawal = withdrawal_request(
        user=funded_player, amount_u=AMOUNT_U, currency="USDC", provider="stripe", destination=destination_for("stripe")
    )
    withdrawal_approve(withdrawal_id=withdrawal.pk, acting_user=finance)
    stub.set_mode("stripe_transfer", "decline", times=1)  # the platform's balance is short: nothing left it
    assert payout_submit(withdrawal_id=withdrawal.pk).status == "declined"
    assert stub.objects("stripe_transfer") == [] and stub.objects("stripe_payout") == []
    withdrawal_resolve(withdrawal_id=withdrawal.pk, acting_user=finance, decision="refund_failed", reason="r")
    withdrawal.refresh_from_db()
    assert withdrawal.state == Withdrawal.State.REFUNDED
    assert balances(funded_player).held_u == 0


def test_old_rows_without_a_destination_stay_readable_and_reconcilable(
    stub: Any, funded_player: Any, finance: Any, api_client_for: Any
) -> None:
    """No migration rewrites them: the API reads them, and an old Stripe payout made on the platform's balance
    (before Connect) is still found there by reconciliation (reading only)."""
    import stripe
    from django.conf import settings

    withdrawal = _approved_then_emptied(funded_player, finance, "stripe", {})
    withdrawal.refresh_from_db()
    response = api_client_for(funded_player).get(f"{URL}/{withdrawal.pk}")
    assert response.status_code == 200 and response.json()["destination"] == {}

    key = f"wd-{withdrawal.pk}-1"
    client = stripe.StripeClient(settings.STRIPE_API_KEY, base_addresses={"api": stub.url})
    old = client.v1.payouts.create(
        params={"amount": AMOUNT_U, "currency": "usdc", "metadata": {"idempotency_key": key}},
        options={"idempotency_key": key},
    )
    found = get_provider("stripe").status(withdrawal=withdrawal, idempotency_key=key)
    assert (found.status, found.psp_reference) == ("pending", old.id), found
    assert found.evidence["stripe_account"] == "platform", found
    assert [r.headers.get("stripe-account") for r in stub.requests if r.method == "GET"] == [None]
