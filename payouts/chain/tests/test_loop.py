"""The whole USDC loop on chain: deposit credited once after confirmations, bet, withdrawal, approval,
payout confirmed, hold burned, and token balances on chain equal to the ledger's movements."""

from __future__ import annotations

from typing import Any

import pytest
from eth_account import Account

from ledger.models import Account as LedgerAccount
from payouts.chain.deposits import chain_deposits_scan
from payouts.chain.models import ChainDeposit, ChainTransfer
from payouts.chain.payouts import chain_payouts_track
from payouts.chain.testing.fixtures import CONFIRMATIONS
from payouts.models import Withdrawal
from payouts.tests.helpers import balances
from rounds.tests.conftest import clock, open_round, prices  # noqa: F401  (fixtures)

pytestmark = pytest.mark.django_db

DEPOSIT_U = 100_000_000
STAKE_U = 30_000_000
WITHDRAW_U = 50_000_000


def _ledger(name: str) -> int:
    row = LedgerAccount.objects.filter(name=name, currency="USDC").first()
    return int(row.balance_u) if row else 0


def test_the_whole_usdc_loop_on_chain(
    chain: Any,
    player: Any,
    finance: Any,
    api_client_for: Any,
    open_round: Any,  # noqa: F811
    assert_ledger_ok: Any,
) -> None:
    from rounds.betting import bet_place

    api = api_client_for(player)
    hot_before = chain.token_balance(chain.hot.address)

    # 1. Deposit: the player pays USDC from their own wallet to their deposit address.
    address = api.get("/v1/chain/deposit-address").json()["address"]
    wallet = Account.create()
    chain.mint(wallet.address, DEPOSIT_U)
    chain.bridge.send_eth(wallet.address, 10**17)
    chain.pay_from(wallet, address, DEPOSIT_U)
    chain_deposits_scan()
    assert balances(player).available_u == 0  # not yet confirmed
    chain.bridge.mine(CONFIRMATIONS - 1)
    chain_deposits_scan()
    chain_deposits_scan()
    assert balances(player).available_u == DEPOSIT_U  # credited once

    # 2. Bet.
    round_obj = open_round()
    bet_place(user=player, code=round_obj.code, side="UP", stake_u=STAKE_U)
    assert balances(player).available_u == DEPOSIT_U - STAKE_U

    # 3. Withdrawal (API, checksummed destination), 4. approval.
    response = api.post(
        "/v1/withdrawals",
        {"amount_u": WITHDRAW_U, "currency": "USDC", "provider": "chain", "destination": {"address": wallet.address}},
        format="json",
        HTTP_IDEMPOTENCY_KEY="loop-withdraw-1",
    )
    assert response.status_code == 201, response.content
    withdrawal_id = response.json()["id"]
    assert balances(player).held_u == WITHDRAW_U
    response = api_client_for(finance).post(f"/v1/withdrawals/{withdrawal_id}/approve", {"reason": "ok"}, format="json")
    assert response.status_code == 200, response.content

    # 5. The payout worker sends it; paid only after the confirmations.
    from payouts.services import payout_submit

    assert payout_submit(withdrawal_id=withdrawal_id).status == "accepted"
    chain_payouts_track()
    assert Withdrawal.objects.get(pk=withdrawal_id).state == Withdrawal.State.PAYOUT_SUBMITTED
    chain.bridge.mine(CONFIRMATIONS - 1)
    chain_payouts_track()
    withdrawal = Withdrawal.objects.get(pk=withdrawal_id)
    assert withdrawal.state == Withdrawal.State.PAID

    # 6. Hold burned; the player sees the transaction hash.
    record = ChainTransfer.objects.get(withdrawal=withdrawal)
    assert balances(player).held_u == 0
    assert balances(player).available_u == DEPOSIT_U - STAKE_U - WITHDRAW_U
    body = api.get(f"/v1/withdrawals/{withdrawal_id}").json()
    assert body["state"] == "paid" and body["tx_hash"] == record.tx_hash

    # 7. Token balances on chain equal the ledger's movements.
    credited_u = sum(
        ChainDeposit.objects.filter(status=ChainDeposit.Status.CREDITED).values_list("amount_u", flat=True)
    )
    burned_u = WITHDRAW_U
    assert chain.token_balance(address) == credited_u == DEPOSIT_U  # in at the deposit address
    assert hot_before - chain.token_balance(chain.hot.address) == burned_u  # out of the hot wallet
    assert chain.token_balance(wallet.address) == burned_u  # to the player's wallet
    assert -_ledger("psp:chain") == credited_u - burned_u  # the clearing account nets the two
    pool = LedgerAccount.objects.filter(name__startswith=f"round:{round_obj.code}:pool", currency="USDC")
    assert sum(a.balance_u for a in pool) == STAKE_U  # the pool and its stripes (bets credit a stripe before lock)
    assert_ledger_ok()
