"""Payout workers in other processes, reaching the chain through the JSON-RPC bridge: kills and concurrency."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone
from eth_account import Account

from payouts.chain.models import ChainTransfer, HotWallet
from payouts.chain.payouts import chain_payouts_track
from payouts.chain.testing.fixtures import CONFIRMATIONS, chain_env_vars
from payouts.models import PayoutAttempt, Withdrawal
from payouts.services import payout_submit, withdrawal_approve, withdrawal_request
from payouts.tests.helpers import balances

ROOT = Path(__file__).resolve().parents[3]
AMOUNT_U = 10_000_000


def _worker(chain: Any, *args: str) -> subprocess.Popen[str]:
    settings_dict = connection.settings_dict
    env = {
        **os.environ,
        **chain_env_vars(chain),
        # Its payout leases (payouts/leases.py): 6 RPC calls x (connect + read) x 1 s + 0.5 s = 12.5 s.
        "CHAIN_RPC_TIMEOUT_S": "1",
        "PAYOUT_LEASE_MARGIN_S": "0.5",
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": f"postgres://{settings_dict['USER']}@{settings_dict['HOST']}:{settings_dict['PORT']}/"
        f"{settings_dict['NAME']}",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "payouts.chain.testing.worker", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _approved(player: Any, finance: Any, to: str) -> Withdrawal:
    withdrawal = withdrawal_request(
        user=player, amount_u=AMOUNT_U, currency="USDC", provider="chain", destination={"address": to}
    )
    withdrawal_approve(withdrawal_id=withdrawal.pk, acting_user=finance)
    return withdrawal


def _confirm_all(chain: Any) -> None:
    chain.bridge.mine(CONFIRMATIONS)
    chain_payouts_track()


@pytest.mark.parametrize("die_after", ["sign", "broadcast"])
def test_a_worker_killed_mid_payout_leaves_one_transfer_on_chain(
    transactional_db: Any, chain: Any, onchain_player: Any, finance: Any, assert_ledger_ok: Any, die_after: str
) -> None:
    dest = Account.create().address
    withdrawal = _approved(onchain_player, finance, dest)
    proc = _worker(chain, str(withdrawal.pk), "--die-after", die_after)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == -signal.SIGKILL, err[-2000:]

    record = ChainTransfer.objects.get(withdrawal=withdrawal)  # recorded before any broadcast
    assert PayoutAttempt.objects.get(withdrawal=withdrawal).outcome == PayoutAttempt.Outcome.PENDING
    withdrawal.refresh_from_db()
    assert withdrawal.state == Withdrawal.State.PAYOUT_SUBMITTED
    on_chain = chain.transfers(receiver=dest)
    assert len(on_chain) == (0 if die_after == "sign" else 1)

    # While the dead worker's lease lives (its broadcast might still be under way) nobody sends anything.
    assert withdrawal.payout_lease_owner and payout_submit(withdrawal_id=withdrawal.pk).status == "in_flight"
    chain_payouts_track()
    assert ChainTransfer.objects.get(pk=record.pk).broadcast_count == record.broadcast_count
    while Withdrawal.objects.filter(pk=withdrawal.pk, payout_lease_until__gt=timezone.now()).exists():
        time.sleep(0.2)
    # Then the payout worker runs again (requeue / task retry): it resends the stored bytes, never signs anew.
    run = payout_submit(withdrawal_id=withdrawal.pk)
    assert run.status == "accepted"
    assert ChainTransfer.objects.filter(withdrawal=withdrawal).count() == 1
    _confirm_all(chain)
    withdrawal.refresh_from_db()
    assert withdrawal.state == Withdrawal.State.PAID
    logs = chain.transfers(receiver=dest)
    assert len(logs) == 1 and "0x" + bytes(logs[0]["transactionHash"]).hex() == record.tx_hash
    assert chain.token_balance(dest) == AMOUNT_U
    assert HotWallet.objects.get().next_nonce == 1
    assert balances(onchain_player).held_u == 0
    assert_ledger_ok()


def test_two_workers_at_once_use_distinct_nonces_without_gaps(
    transactional_db: Any, chain: Any, make_player: Any, fund: Any, finance: Any, assert_ledger_ok: Any
) -> None:
    withdrawals = []
    for _ in range(6):
        player = make_player()
        fund(player, AMOUNT_U)
        withdrawals.append(_approved(player, finance, Account.create().address))
    start_at = time.time() + 4  # both processes are up by then and submit at the same instant
    workers = [  # each holds the nonce allocation open for 0.5 s: without the row lock they would collide
        _worker(chain, *[str(w.pk) for w in withdrawals[0::2]], "--start-at", str(start_at), "--slow-sign", "0.5"),
        _worker(chain, *[str(w.pk) for w in withdrawals[1::2]], "--start-at", str(start_at), "--slow-sign", "0.5"),
    ]
    outputs = []
    for proc in workers:
        out, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, err[-2000:]
        outputs += json.loads(out.strip().splitlines()[-1])
    assert sorted(r["status"] for r in outputs) == ["accepted"] * 6

    nonces = sorted(ChainTransfer.objects.values_list("nonce", flat=True))
    assert nonces == list(range(6))  # distinct, no gap
    assert HotWallet.objects.get().next_nonce == 6
    with chain.bridge.lock:
        assert chain.bridge.w3.eth.get_transaction_count(chain.hot.address) == 6  # every one mined: none blocked
    _confirm_all(chain)
    assert set(Withdrawal.objects.values_list("state", flat=True)) == {Withdrawal.State.PAID}
    for withdrawal in withdrawals:
        assert chain.token_balance(withdrawal.destination["address"]) == AMOUNT_U
    assert_ledger_ok()
