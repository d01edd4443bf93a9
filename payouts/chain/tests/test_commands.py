"""The chain app's operator commands: acknowledge a flagged item, replace a stuck transaction."""

from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from eth_account import Account

from ops.models import AuditRecord
from ops.stuck import stuck_jobs
from payouts.chain.deposits import chain_deposits_scan, deposit_address_for
from payouts.chain.models import ChainDeposit, ChainTransfer
from payouts.chain.testing.fixtures import CONFIRMATIONS
from payouts.services import payout_submit, withdrawal_approve, withdrawal_request

pytestmark = pytest.mark.django_db


def test_a_flagged_deposit_is_acknowledged_by_a_named_operator(
    chain: Any, player: Any, finance: Any, make_staff: Any
) -> None:
    address = deposit_address_for(user=player).address
    wallet = Account.create()
    chain.mint(wallet.address, 10**7)
    chain.bridge.send_eth(wallet.address, 10**17)
    before = chain.bridge.snapshot()
    chain.pay_from(wallet, address, 10**7)
    chain.bridge.mine(CONFIRMATIONS)
    chain_deposits_scan()
    chain.bridge.revert(before)
    chain_deposits_scan()
    deposit = ChainDeposit.objects.get()
    assert deposit.review_reason and len(stuck_jobs()) == 1
    key = f"{deposit.tx_hash}:{deposit.log_index}"
    with pytest.raises(CommandError, match="^refused: forbidden: "):  # support may not
        call_command(
            "chain_review", "--deposit", key, "--reason", "checked", "--operator", make_staff(role="support").email
        )
    with pytest.raises(CommandError, match="^refused: chain/reason-required: Give a reason"):
        call_command("chain_review", "--deposit", key, "--reason", " ", "--operator", finance.email)
    assert len(stuck_jobs()) == 1
    out = StringIO()
    call_command(
        "chain_review",
        "--deposit",
        key,
        "--reason",
        "adjusted by hand, ticket 7",
        "--operator",
        finance.email,
        stdout=out,
    )
    assert "reviewed by" in out.getvalue() and stuck_jobs() == []
    assert AuditRecord.objects.filter(action="chain.deposit.reviewed", reason="adjusted by hand, ticket 7").exists()


def test_a_stuck_transaction_is_replaced_from_the_command_line_by_two_operators(
    chain: Any, onchain_player: Any, finance: Any, make_staff: Any
) -> None:
    chain.bridge.set_automine(False)
    withdrawal = withdrawal_request(
        user=onchain_player,
        amount_u=10**6,
        currency="USDC",
        provider="chain",
        destination={"address": Account.create().address},
    )
    withdrawal_approve(withdrawal_id=withdrawal.pk, acting_user=finance)
    payout_submit(withdrawal_id=withdrawal.pk)
    stuck = ChainTransfer.objects.get()
    args = [
        "chain_replace_tx",
        "--tx",
        stuck.tx_hash,
        "--max-fee-wei",
        str(int(stuck.max_fee_per_gas) * 2),
        "--tip-wei",
        str(int(stuck.max_priority_fee_per_gas) * 2),
        "--reason",
        "stuck for 2h",
    ]
    out = StringIO()
    call_command(*args, "--operator", finance.email, stdout=out)
    assert "a second operator must approve" in out.getvalue()
    assert ChainTransfer.objects.count() == 1
    with pytest.raises(CommandError):
        call_command(*args, "--operator", finance.email)
    second = make_staff(role="finance")
    out = StringIO()
    call_command(*args, "--operator", second.email, stdout=out)
    replacement = ChainTransfer.objects.get(seq=1)
    assert replacement.tx_hash in out.getvalue() and replacement.nonce == stuck.nonce
    assert AuditRecord.objects.filter(action="chain.transfer.replace", actor=second).count() == 1
    with pytest.raises(CommandError, match="already replaced"):
        call_command(
            "chain_replace_tx",
            "--tx",
            stuck.tx_hash,
            "--max-fee-wei",
            "1",
            "--tip-wei",
            "1",
            "--reason",
            "again",
            "--operator",
            finance.email,
        )


def test_the_withdraw_command_takes_a_checksummed_destination(onchain_player: Any) -> None:
    from payouts.models import Withdrawal

    with pytest.raises(CommandError, match="EIP-55"):
        call_command(
            "withdraw",
            "--user",
            onchain_player.email,
            "--amount",
            "1000000",
            "--provider",
            "chain",
            "--destination-address",
            "0x52908400098527886e0f7030069857d2e4169ee7",
        )
    with pytest.raises(CommandError, match="destination"):
        call_command("withdraw", "--user", onchain_player.email, "--amount", "1000000", "--provider", "chain")
    assert not Withdrawal.objects.exists()
    call_command(
        "withdraw",
        "--user",
        onchain_player.email,
        "--amount",
        "1000000",
        "--provider",
        "chain",
        "--destination-address",
        "0x52908400098527886E0F7030069857D2E4169EE7",
        stdout=StringIO(),
    )
    assert Withdrawal.objects.get().destination == {"address": "0x52908400098527886E0F7030069857D2E4169EE7"}
