"""The confirmation tracker's rebroadcast takes the payout's lease too (payouts/leases.py): it sends nothing
while the payout worker may be sending the same payout, and sends the same signed bytes once it may."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import transaction
from eth_account import Account

from payouts.chain.models import ChainTransfer
from payouts.chain.payouts import chain_payouts_track
from payouts.leases import Lease, lease_claim, lease_release
from payouts.lock_objects import withdrawal_lock
from payouts.models import Withdrawal
from payouts.services import payout_submit, withdrawal_approve, withdrawal_request

pytestmark = pytest.mark.django_db

AMOUNT_U = 25_000_000


def test_the_tracker_does_not_rebroadcast_while_the_payout_worker_holds_the_lease(
    chain: Any, onchain_player: Any, finance: Any, assert_ledger_ok: Any
) -> None:
    dest = Account.create().address
    withdrawal = withdrawal_request(
        user=onchain_player, amount_u=AMOUNT_U, currency="USDC", provider="chain", destination={"address": dest}
    )
    withdrawal_approve(withdrawal_id=withdrawal.pk, acting_user=finance)
    chain.bridge.fail_sends = 1  # signed and recorded, but the broadcast is lost
    assert payout_submit(withdrawal_id=withdrawal.pk).status == "ambiguous"
    record = ChainTransfer.objects.get(withdrawal=withdrawal)
    assert record.status == ChainTransfer.Status.SIGNED and record.broadcast_count == 0

    with transaction.atomic():  # a payout worker's retry is sending it right now
        held = lease_claim(withdrawal=withdrawal_lock(withdrawal_id=withdrawal.pk), purpose="payout-worker")
    assert isinstance(held, Lease)
    chain_payouts_track()
    record.refresh_from_db()
    assert record.broadcast_count == 0 and chain.transfers(receiver=dest) == []  # the tracker sent nothing
    assert Withdrawal.objects.get(pk=withdrawal.pk).payout_lease_owner == held.owner  # and left the lease alone

    lease_release(held)
    chain_payouts_track()  # now it may: the same signed bytes, once
    record.refresh_from_db()
    assert record.broadcast_count == 1 and len(chain.transfers(receiver=dest)) == 1
    assert Withdrawal.objects.get(pk=withdrawal.pk).payout_lease_owner == ""  # given back
    assert_ledger_ok()
