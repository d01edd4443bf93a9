"""The canary money loop on chain: live server, a real Celery worker, the chain behind the JSON-RPC bridge,
and a stand-in for beat that mines blocks and runs the deposit watcher and the confirmation tracker."""

from __future__ import annotations

import threading
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection
from eth_account import Account

from accounts.tests.factories import PASSWORD
from ledger.models import Account as LedgerAccount
from payouts.chain.models import ChainTransfer, DepositAddress
from payouts.models import Withdrawal

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

AMOUNT_U = 10_000_000


class Outside(threading.Thread):
    """The world outside: the player pays their deposit address once it exists; blocks keep coming; beat runs."""

    def __init__(self, chain: Any, wallet: Any) -> None:
        super().__init__(daemon=True)
        self.chain, self.wallet, self.stop = chain, wallet, threading.Event()
        self.paid = False
        self.errors: list[BaseException] = []

    def run(self) -> None:
        from payouts.chain.deposits import chain_deposits_scan
        from payouts.chain.payouts import chain_payouts_track

        try:
            while not self.stop.wait(0.3):
                row = DepositAddress.objects.first()
                if row is not None and not self.paid:
                    self.chain.pay_from(self.wallet, row.address, AMOUNT_U)
                    self.paid = True
                self.chain.bridge.mine(1)
                chain_deposits_scan()
                chain_payouts_track()
        except BaseException as exc:  # surfaced by the test
            self.errors.append(exc)
        finally:
            connection.close()


def test_the_canary_runs_on_chain(
    live_server: Any, celery_worker_on_redis: Any, chain: Any, make_player: Any, make_staff: Any, tmp_path: Path
) -> None:
    player, operator = make_player(), make_staff(role="finance")
    wallet = Account.create()
    chain.mint(wallet.address, AMOUNT_U)
    chain.bridge.send_eth(wallet.address, 10**17)
    destination = Account.create().address
    outside = Outside(chain, wallet)
    outside.start()
    out = StringIO()
    try:
        call_command(
            "canary",
            "--base-url",
            live_server.url,
            "--player-email",
            player.email,
            "--player-password",
            PASSWORD,
            "--operator-email",
            operator.email,
            "--operator-password",
            PASSWORD,
            "--provider",
            "chain",
            "--destination-address",
            destination,
            "--timeout",
            "60",
            "--report-dir",
            str(tmp_path),
            "--release",
            "test-sha",
            stdout=out,
        )
    finally:
        outside.stop.set()
        outside.join(timeout=30)
    assert outside.errors == []
    text = out.getvalue()
    assert text.strip().endswith("canary: PASS"), text
    assert "waiting for a deposit of 10000000 USDC units on chain to 0x" in text
    body = next(tmp_path.glob("canary-*.md")).read_text()
    assert "| Result | **PASS** |" in body
    withdrawal = Withdrawal.objects.get(user=player)
    record = ChainTransfer.objects.get(withdrawal=withdrawal)
    assert withdrawal.state == "paid" and record.status == ChainTransfer.Status.CONFIRMED
    assert chain.token_balance(destination) == AMOUNT_U
    assert len(chain.transfers(receiver=destination)) == 1
    balances = dict(LedgerAccount.objects.filter(owner=player).values_list("kind", "balance_u"))
    assert balances == {"user_available": 0, "user_held": 0}
