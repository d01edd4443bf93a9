"""On-chain deposits on a real EVM: xpub addresses, credit once after confirmations, reorgs, resume."""

from __future__ import annotations

from typing import Any

import pytest
from eth_account import Account

from ledger.models import Account as LedgerAccount
from ledger.models import Journal
from payouts.chain.deposits import chain_deposits_scan, deposit_address_for, derive_address
from payouts.chain.models import ChainCursor, ChainDeposit
from payouts.chain.testing.fixtures import CONFIRMATIONS, deposit_private_key, deposit_xpub
from payouts.tests.helpers import balances

pytestmark = pytest.mark.django_db

AMOUNT_U = 40_000_000


def _customer(chain: Any, amount_u: int = 10**9) -> Any:
    """An outside wallet holding USDC, paying into the platform."""
    customer = Account.create()
    chain.mint(customer.address, amount_u)
    chain.bridge.send_eth(customer.address, 10**17)
    return customer


def _credited_journals() -> int:
    return Journal.objects.filter(type="deposit", reference__startswith="chain-deposit:").count()


def test_deposit_addresses_come_from_the_xpub_and_match_the_offline_keys(
    settings: Any, player: Any, make_player: Any, api_client_for: Any, make_staff: Any
) -> None:
    from ops.errors import NotAPlayer

    settings.CHAIN_DEPOSIT_XPUB = deposit_xpub()
    settings.CHAIN_RPC_URL, settings.CHAIN_ID = "http://127.0.0.1:9", 1
    settings.CHAIN_USDC_ADDRESS = "0x52908400098527886E0F7030069857D2E4169EE7"
    row = deposit_address_for(user=player)
    assert row.index == player.pk
    # The address is the one whose private key the offline holder of the xprv derives.
    assert row.address == Account.from_key(deposit_private_key(player.pk)).address
    assert deposit_address_for(user=player).pk == row.pk  # stable
    other = make_player()
    assert deposit_address_for(user=other).address != row.address
    assert derive_address(xpub=deposit_xpub(), index=other.pk) == deposit_address_for(user=other).address
    body = api_client_for(player).get("/v1/chain/deposit-address").json()
    assert body["address"] == row.address and body["currency"] == "USDC"
    with pytest.raises(NotAPlayer):
        deposit_address_for(user=make_staff(role="finance"))


def test_an_xprv_is_refused_as_configuration(settings: Any, player: Any) -> None:
    from bip32 import BIP32

    from payouts.chain.errors import ChainNotConfigured

    settings.CHAIN_DEPOSIT_XPUB = BIP32.from_seed(bytes(32)).get_xpriv()
    with pytest.raises(ChainNotConfigured):
        deposit_address_for(user=player)


def test_a_deposit_is_credited_once_after_the_confirmations(chain: Any, player: Any, assert_ledger_ok: Any) -> None:
    address = deposit_address_for(user=player).address
    customer = _customer(chain)
    chain.pay_from(customer, Account.create().address, 5)  # not ours: ignored
    tx_hash = chain.pay_from(customer, address, AMOUNT_U)  # mined in the head block: 1 confirmation

    for _ in range(CONFIRMATIONS - 1):
        report = chain_deposits_scan()
        assert report.credited == 0
        assert balances(player).available_u == 0
        chain.bridge.mine(1)
    report = chain_deposits_scan()
    assert report.credited == 1
    deposit = ChainDeposit.objects.get()
    assert (deposit.tx_hash, deposit.status, deposit.amount_u) == (tx_hash, ChainDeposit.Status.CREDITED, AMOUNT_U)
    assert balances(player).available_u == AMOUNT_U
    psp = LedgerAccount.objects.get(name="psp:chain", currency="USDC")
    assert psp.balance_u == -AMOUNT_U

    chain.bridge.mine(5)
    for _ in range(2):
        assert chain_deposits_scan().credited == 0
    assert balances(player).available_u == AMOUNT_U and _credited_journals() == 1
    assert_ledger_ok()


def test_the_watcher_resumes_from_its_stored_cursor(chain: Any, player: Any) -> None:
    address = deposit_address_for(user=player).address
    customer = _customer(chain)
    chain.bridge.mine(4)
    first = chain_deposits_scan()
    cursor = ChainCursor.objects.get()
    assert first.from_block == 0 and cursor.last_block == first.head - CONFIRMATIONS + 1
    chain.pay_from(customer, address, AMOUNT_U)
    chain.bridge.mine(CONFIRMATIONS)
    second = chain_deposits_scan()  # a new run (as after a restart) starts after the stored cursor
    assert second.from_block == cursor.last_block + 1
    assert second.credited == 1
    assert balances(player).available_u == AMOUNT_U


def test_a_reorg_before_the_confirmations_credits_nothing(chain: Any, player: Any, assert_ledger_ok: Any) -> None:
    address = deposit_address_for(user=player).address
    customer = _customer(chain)
    before = chain.bridge.snapshot()
    chain.pay_from(customer, address, AMOUNT_U)
    assert chain_deposits_scan().seen == 1
    chain.bridge.revert(before)  # the deposit's block is reorganised away
    chain.bridge.mine(CONFIRMATIONS + 2)
    report = chain_deposits_scan()
    assert report.orphaned == 1 and report.credited == 0
    deposit = ChainDeposit.objects.get()
    assert deposit.status == ChainDeposit.Status.ORPHANED
    assert deposit.evidence[-1]["event"] == "reorged_out_before_confirmation"
    chain.bridge.mine(3)
    chain_deposits_scan()
    assert balances(player).available_u == 0 and _credited_journals() == 0
    assert_ledger_ok()


def test_a_reorg_after_the_confirmations_is_flagged_for_review(chain: Any, player: Any, assert_ledger_ok: Any) -> None:
    from ops.stuck import stuck_jobs

    address = deposit_address_for(user=player).address
    customer = _customer(chain)
    before = chain.bridge.snapshot()
    chain.pay_from(customer, address, AMOUNT_U)
    chain.bridge.mine(CONFIRMATIONS)
    assert chain_deposits_scan().credited == 1
    assert stuck_jobs() == []

    chain.bridge.revert(before)  # deeper than the confirmation depth
    chain.bridge.mine(2)
    report = chain_deposits_scan()
    assert report.flagged == 1 and report.rewound
    deposit = ChainDeposit.objects.get()
    assert deposit.status == ChainDeposit.Status.CREDITED and "left the chain" in deposit.review_reason
    findings = [f for f in stuck_jobs() if f.kind == "chain_deposit"]
    assert len(findings) == 1 and findings[0].id == f"{deposit.tx_hash}:{deposit.log_index}"
    # Never debited by itself; the credit stays once.
    assert balances(player).available_u == AMOUNT_U and _credited_journals() == 1
    chain_deposits_scan()
    assert len([f for f in stuck_jobs() if f.kind == "chain_deposit"]) == 1

    # New deposits after the reorg are still found (the cursor was rewound, not stuck above the head).
    chain.pay_from(_customer(chain), address, 7_000_000)
    chain.bridge.mine(CONFIRMATIONS)
    assert chain_deposits_scan().credited == 1
    assert balances(player).available_u == AMOUNT_U + 7_000_000
    assert_ledger_ok()
