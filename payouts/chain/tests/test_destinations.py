"""On-chain destinations (issue 20, item 1): an EIP-55 address that is none of the platform's own.

The zero address, the USDC token contract itself, the hot wallet and any player's deposit address are refused
where the withdrawal is requested (API 400 problem+json, command one line), with nothing held; and a stored row
naming one of them (written before these checks) is refused by the rail before anything is read, signed or sent.
"""

from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from eth_account import Account

from payouts.chain.deposits import deposit_address_for
from payouts.chain.models import ChainTransfer, HotWallet
from payouts.models import PayoutAttempt, Withdrawal
from payouts.services import payout_submit, withdrawal_approve, withdrawal_request
from payouts.tests.helpers import balances, snapshot

pytestmark = pytest.mark.django_db

AMOUNT_U = 25_000_000
ZERO = "0x0000000000000000000000000000000000000000"


def _ours(which: str, chain: Any, make_player: Any) -> tuple[str, str]:
    """One of the platform's own addresses, and the words the refusal uses for it."""
    if which == "zero":
        return ZERO, "zero address"
    if which == "token":
        return str(chain.token.address), "the USDC token contract"
    if which == "hot wallet":
        return str(chain.hot.address), "the platform's hot wallet"
    if which == "deposit address":
        return deposit_address_for(user=make_player()).address, "a deposit address of this platform"
    raise AssertionError(which)


OURS = ["zero", "token", "hot wallet", "deposit address"]


@pytest.mark.parametrize("which", OURS)
def test_the_api_refuses_the_platforms_own_addresses_and_holds_nothing(
    chain: Any, onchain_player: Any, make_player: Any, api_client_for: Any, which: str
) -> None:
    address, words = _ours(which, chain, make_player)
    before, money = snapshot(), balances(onchain_player)
    response = api_client_for(onchain_player).post(
        "/v1/withdrawals",
        {"amount_u": AMOUNT_U, "currency": "USDC", "provider": "chain", "destination": {"address": address}},
        format="json",
        HTTP_IDEMPOTENCY_KEY=f"ours-{which}",
    )
    assert response.status_code == 400, response.content
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["type"] == "chain/invalid-address"
    assert words in response.json()["detail"] and "nothing was held" in response.json()["detail"]
    assert snapshot() == before and balances(onchain_player) == money


@pytest.mark.parametrize(
    "destination",
    [
        {"address": "0x52908400098527886e0f7030069857d2e4169ee7"},  # lower case: no checksum
        {"address": "0X52908400098527886E0F7030069857D2E4169EE7"},  # upper case: no checksum
        {"address": "52908400098527886E0F7030069857D2E4169EE7"},  # no 0x
        {"address": 123},
        {},
        {"connected_account": "acct_1PSPStubPlayer0001"},  # wrong rail
        {"address": "0x52908400098527886E0F7030069857D2E4169EE7", "memo": "x"},  # extra field
    ],
)
def test_the_api_refuses_a_malformed_address_and_holds_nothing(
    onchain_player: Any, api_client_for: Any, destination: dict[str, Any]
) -> None:
    before = snapshot()
    response = api_client_for(onchain_player).post(
        "/v1/withdrawals",
        {"amount_u": AMOUNT_U, "currency": "USDC", "provider": "chain", "destination": destination},
        format="json",
        HTTP_IDEMPOTENCY_KEY="bad-address",
    )
    assert response.status_code == 400, response.content
    assert response.json()["type"] == "chain/invalid-address"
    assert snapshot() == before


@pytest.mark.parametrize("which", OURS)
def test_the_withdraw_command_refuses_them_in_one_line(
    chain: Any, onchain_player: Any, make_player: Any, which: str
) -> None:
    address, words = _ours(which, chain, make_player)
    before = snapshot()
    with pytest.raises(CommandError) as refused:
        call_command(
            "withdraw",
            *("--user", onchain_player.email, "--amount", str(AMOUNT_U), "--provider", "chain"),
            *("--destination-address", address),
            stdout=StringIO(),
        )
    line = str(refused.value)
    assert "\n" not in line and line.startswith("refused: chain/invalid-address:") and words in line
    assert snapshot() == before


def test_a_hot_wallet_known_only_from_its_row_is_refused(onchain_player: Any, monkeypatch: Any) -> None:
    """Without the key in this process (e.g. the web tier), the wallets the rail has used still count."""
    from payouts.chain.errors import InvalidChainAddress

    monkeypatch.delenv("CHAIN_HOT_WALLET_KEY", raising=False)
    wallet = Account.create().address
    HotWallet.objects.create(address=wallet, chain_id=1, next_nonce=0)
    before = snapshot()
    with pytest.raises(InvalidChainAddress, match="hot wallet"):
        withdrawal_request(
            user=onchain_player, amount_u=AMOUNT_U, currency="USDC", provider="chain", destination={"address": wallet}
        )
    assert snapshot() == before


@pytest.mark.parametrize("which", OURS)
def test_a_stored_row_naming_one_of_ours_is_refused_before_anything_is_signed(
    chain: Any, onchain_player: Any, make_player: Any, make_staff: Any, which: str
) -> None:
    """A row written before these checks: the rail refuses it (manual review), nothing signed or broadcast."""
    address, _words = _ours(which, chain, make_player)
    withdrawal = withdrawal_request(
        user=onchain_player,
        amount_u=AMOUNT_U,
        currency="USDC",
        provider="chain",
        destination={"address": Account.create().address},
    )
    withdrawal_approve(withdrawal_id=withdrawal.pk, acting_user=make_staff(role="finance"))
    Withdrawal.objects.filter(pk=withdrawal.pk).update(destination={"address": address})
    hot_before = chain.token_balance(chain.hot.address)
    money = balances(onchain_player)
    head = chain.bridge.w3.eth.block_number

    run = payout_submit(withdrawal_id=withdrawal.pk)

    assert run.status == "refused"
    withdrawal.refresh_from_db()
    assert withdrawal.state == Withdrawal.State.PAYOUT_FAILED
    assert list(withdrawal.attempts.values_list("outcome", flat=True)) == [PayoutAttempt.Outcome.REFUSED]
    assert not ChainTransfer.objects.exists()  # nothing signed
    assert chain.bridge.w3.eth.block_number == head  # nothing sent
    assert chain.token_balance(chain.hot.address) == hot_before
    assert balances(onchain_player) == money
