"""The on-chain payout rail on a real EVM: confirmations, never sending twice, reverts, empty wallet, reorgs."""

from __future__ import annotations

from typing import Any

import pytest
from eth_account import Account

from ledger.models import Account as LedgerAccount
from ops.models import Switch
from ops.switches import switch_is_on
from payouts.chain.models import ChainTransfer, HotWallet
from payouts.chain.payouts import chain_payouts_track
from payouts.chain.testing.fixtures import CONFIRMATIONS
from payouts.models import PayoutEvent, Withdrawal
from payouts.services import payout_submit, withdrawal_approve, withdrawal_request
from payouts.tests.helpers import balances, snapshot

pytestmark = pytest.mark.django_db

AMOUNT_U = 25_000_000  # 25 USDC


def _chain_clearing_u() -> int:
    row = LedgerAccount.objects.filter(name="psp:chain", currency="USDC").first()
    return int(row.balance_u) if row else 0


def _approved(player: Any, finance: Any, to: str, amount_u: int = AMOUNT_U) -> Withdrawal:
    withdrawal = withdrawal_request(
        user=player, amount_u=amount_u, currency="USDC", provider="chain", destination={"address": to}
    )
    withdrawal_approve(withdrawal_id=withdrawal.pk, acting_user=finance)
    return withdrawal


def _confirm(chain: Any) -> None:
    """Mine until the last transaction has the required confirmations, then run the tracker."""
    chain.bridge.mine(CONFIRMATIONS - 1)
    chain_payouts_track()


@pytest.mark.parametrize(
    "address",
    [
        "0x52908400098527886e0f7030069857d2e4169ee7",  # all lowercase: no checksum
        "0x52908400098527886E0F7030069857D2E4169Ee7",  # wrong checksum
        "0x5290840009852788",  # too short
        "0x0000000000000000000000000000000000000000",  # zero address
        "",
    ],
)
def test_request_refuses_a_destination_that_is_not_eip55(onchain_player: Any, address: str) -> None:
    from payouts.chain.errors import InvalidChainAddress

    before = snapshot()
    with pytest.raises(InvalidChainAddress):
        withdrawal_request(
            user=onchain_player, amount_u=AMOUNT_U, currency="USDC", provider="chain", destination={"address": address}
        )
    assert snapshot() == before
    assert balances(onchain_player).available_u == 100_000_000


def test_request_refuses_another_currency_and_accepts_a_checksummed_address(onchain_player: Any, fund: Any) -> None:
    from payouts.chain.errors import ChainCurrencyNotSupported

    fund(onchain_player, 10_000, currency="USD")
    before = snapshot()
    with pytest.raises(ChainCurrencyNotSupported) as refused:
        withdrawal_request(
            user=onchain_player,
            amount_u=1_000,
            currency="USD",
            provider="chain",
            destination={"address": "0x52908400098527886E0F7030069857D2E4169EE7"},
        )
    assert refused.value.code == "chain/unsupported-currency"
    assert snapshot() == before
    withdrawal = withdrawal_request(
        user=onchain_player,
        amount_u=AMOUNT_U,
        currency="USDC",
        provider="chain",
        destination={"address": "0x52908400098527886E0F7030069857D2E4169EE7"},
    )
    assert withdrawal.state == Withdrawal.State.REQUESTED


def test_paid_only_after_the_required_confirmations(
    chain: Any, onchain_player: Any, finance: Any, api_client_for: Any, assert_ledger_ok: Any
) -> None:
    dest = Account.create().address
    withdrawal = _approved(onchain_player, finance, dest)
    run = payout_submit(withdrawal_id=withdrawal.pk)
    assert run.status == "accepted"
    record = ChainTransfer.objects.get(withdrawal=withdrawal)
    withdrawal.refresh_from_db()
    assert withdrawal.state == Withdrawal.State.PAYOUT_SUBMITTED
    assert withdrawal.psp_reference == record.tx_hash
    assert record.status == ChainTransfer.Status.BROADCAST and record.nonce == 0
    assert chain.token_balance(dest) == AMOUNT_U  # mined at once (auto-mine), not yet confirmed

    # The player sees the transaction hash on their withdrawal.
    body = api_client_for(onchain_player).get(f"/v1/withdrawals/{withdrawal.pk}").json()
    assert body["tx_hash"] == record.tx_hash and body["psp_reference"] == record.tx_hash

    for _ in range(CONFIRMATIONS - 1):
        chain_payouts_track()
        withdrawal.refresh_from_db()
        assert withdrawal.state == Withdrawal.State.PAYOUT_SUBMITTED
        assert balances(onchain_player).held_u == AMOUNT_U and _chain_clearing_u() == 0
        chain.bridge.mine(1)
    chain_payouts_track()
    withdrawal.refresh_from_db()
    record.refresh_from_db()
    assert withdrawal.state == Withdrawal.State.PAID
    assert record.status == ChainTransfer.Status.CONFIRMED
    assert balances(onchain_player).held_u == 0
    assert balances(onchain_player).available_u == 100_000_000 - AMOUNT_U
    assert _chain_clearing_u() == AMOUNT_U  # burned once, to psp:chain

    # Running everything again changes nothing.
    assert payout_submit(withdrawal_id=withdrawal.pk).status == "nothing_to_do"
    chain_payouts_track()
    assert _chain_clearing_u() == AMOUNT_U
    assert PayoutEvent.objects.filter(provider="chain").count() == 1
    assert len(chain.transfers(receiver=dest)) == 1
    assert_ledger_ok()


def test_a_retry_rebroadcasts_the_same_signed_transaction(
    chain: Any, onchain_player: Any, finance: Any, assert_ledger_ok: Any
) -> None:
    dest = Account.create().address
    withdrawal = _approved(onchain_player, finance, dest)
    chain.bridge.fail_sends = 1  # the connection drops during the first broadcast
    first = payout_submit(withdrawal_id=withdrawal.pk)
    assert first.status == "ambiguous" and first.retryable
    record = ChainTransfer.objects.get(withdrawal=withdrawal)
    assert record.status == ChainTransfer.Status.SIGNED
    assert chain.transfers(receiver=dest) == []

    second = payout_submit(withdrawal_id=withdrawal.pk)  # the task's retry
    assert second.status == "accepted"
    assert ChainTransfer.objects.filter(withdrawal=withdrawal).count() == 1
    record.refresh_from_db()
    assert record.status == ChainTransfer.Status.BROADCAST and record.broadcast_count == 1
    logs = chain.transfers(receiver=dest)
    assert len(logs) == 1 and "0x" + bytes(logs[0]["transactionHash"]).hex() == record.tx_hash

    # A third send of the same bytes (e.g. the tracker) is recognised as already known: still one transfer.
    payout_submit(withdrawal_id=withdrawal.pk)
    chain_payouts_track()
    _confirm(chain)
    withdrawal.refresh_from_db()
    assert withdrawal.state == Withdrawal.State.PAID
    assert len(chain.transfers(receiver=dest)) == 1
    assert HotWallet.objects.get().next_nonce == 1
    assert_ledger_ok()


def test_a_reverted_transfer_goes_to_manual_review_with_nothing_burned(
    chain: Any, onchain_player: Any, finance: Any, assert_ledger_ok: Any
) -> None:
    dest = Account.create().address
    chain.block(dest)  # the token refuses transfers to this address (as USDC's blocklist does)
    withdrawal = _approved(onchain_player, finance, dest)
    assert payout_submit(withdrawal_id=withdrawal.pk).status == "accepted"
    chain_payouts_track()
    withdrawal.refresh_from_db()
    record = ChainTransfer.objects.get(withdrawal=withdrawal)
    assert record.status == ChainTransfer.Status.REVERTED
    assert withdrawal.state == Withdrawal.State.PAYOUT_FAILED  # the manual-review queue
    assert balances(onchain_player).held_u == AMOUNT_U and _chain_clearing_u() == 0
    assert chain.token_balance(dest) == 0
    evidence = record.evidence[-1]
    assert evidence["event"] == "reverted" and evidence["receipt"]["status"] == 0
    event = PayoutEvent.objects.get(provider="chain")
    assert event.payload["receipt"]["block_number"] == record.block_number and event.result == "payout_failed"
    # Tracking again changes nothing.
    chain_payouts_track()
    assert PayoutEvent.objects.filter(provider="chain").count() == 1
    assert_ledger_ok()


@pytest.mark.parametrize(("token_u", "gas_wei", "what"), [(0, 10**18, "token units"), (10**9, 0, "wei of gas")])
def test_an_empty_hot_wallet_freezes_payouts_and_sends_to_review(
    make_chain: Any,
    onchain_player: Any,
    finance: Any,
    make_player: Any,
    fund: Any,
    assert_ledger_ok: Any,
    token_u: int,
    gas_wei: int,
    what: str,
) -> None:
    chain = make_chain(hot_token_u=token_u, hot_gas_wei=gas_wei)
    dest = Account.create().address
    withdrawal = _approved(onchain_player, finance, dest)
    run = payout_submit(withdrawal_id=withdrawal.pk)
    assert run.status == "declined" and what in run.detail
    withdrawal.refresh_from_db()
    assert withdrawal.state == Withdrawal.State.PAYOUT_FAILED
    assert switch_is_on(Switch.Name.PAYOUT_FREEZE)
    assert not ChainTransfer.objects.exists() and not HotWallet.objects.exists()  # nothing signed, no nonce used
    assert balances(onchain_player).held_u == AMOUNT_U and _chain_clearing_u() == 0
    assert chain.transfers(receiver=dest) == []

    # Submissions stop: the next approved payout is not submitted while the freeze is on.
    other = make_player()
    fund(other, AMOUNT_U)
    second = _approved(other, finance, Account.create().address)
    assert payout_submit(withdrawal_id=second.pk).status == "paused"
    second.refresh_from_db()
    assert second.state == Withdrawal.State.APPROVED
    assert_ledger_ok()


def test_fees_above_the_cap_sign_nothing(chain: Any, settings: Any, onchain_player: Any, finance: Any) -> None:
    settings.CHAIN_MAX_FEE_PER_GAS_WEI = 1  # below any base fee
    withdrawal = _approved(onchain_player, finance, Account.create().address)
    run = payout_submit(withdrawal_id=withdrawal.pk)
    assert run.status == "error" and "fee cap" in run.detail
    assert not ChainTransfer.objects.exists() and not HotWallet.objects.exists()


def test_reorg_before_confirmation_pays_once_after_the_transaction_is_mined_again(
    chain: Any, onchain_player: Any, finance: Any, assert_ledger_ok: Any
) -> None:
    dest = Account.create().address
    withdrawal = _approved(onchain_player, finance, dest)
    before = chain.bridge.snapshot()
    payout_submit(withdrawal_id=withdrawal.pk)
    chain_payouts_track()
    record = ChainTransfer.objects.get(withdrawal=withdrawal)
    assert record.status == ChainTransfer.Status.MINED
    mined_in = record.block_number

    chain.bridge.revert(before)  # the block holding our transfer is gone
    assert chain.transfers(receiver=dest) == []
    chain.bridge.set_automine(False)
    chain_payouts_track()  # sees it gone: nothing paid, the same signed bytes sent again
    record.refresh_from_db()
    withdrawal.refresh_from_db()
    assert withdrawal.state == Withdrawal.State.PAYOUT_SUBMITTED and _chain_clearing_u() == 0
    assert record.status == ChainTransfer.Status.BROADCAST
    assert any(
        e["event"] == "reorged_out_before_confirmation" and e["block_number"] == mined_in for e in record.evidence
    )

    chain.bridge.set_automine(True)
    chain.bridge.mine(1)  # the pool's transaction is mined again
    chain_payouts_track()
    _confirm(chain)
    withdrawal.refresh_from_db()
    assert withdrawal.state == Withdrawal.State.PAID
    assert len(chain.transfers(receiver=dest)) == 1 and chain.token_balance(dest) == AMOUNT_U
    assert _chain_clearing_u() == AMOUNT_U
    assert ChainTransfer.objects.count() == 1
    assert_ledger_ok()


def test_reorg_after_confirmation_is_flagged_for_review(
    chain: Any, onchain_player: Any, finance: Any, assert_ledger_ok: Any
) -> None:
    from ops.stuck import stuck_jobs

    dest = Account.create().address
    withdrawal = _approved(onchain_player, finance, dest)
    before = chain.bridge.snapshot()
    payout_submit(withdrawal_id=withdrawal.pk)
    _confirm(chain)
    withdrawal.refresh_from_db()
    assert withdrawal.state == Withdrawal.State.PAID and _chain_clearing_u() == AMOUNT_U
    assert stuck_jobs() == []

    chain.bridge.revert(before)  # a reorganisation deeper than the confirmation depth
    chain.bridge.set_automine(False)
    chain_payouts_track()
    record = ChainTransfer.objects.get(withdrawal=withdrawal)
    assert "left the chain after" in record.review_reason
    assert record.evidence[-1]["event"] == "reorged_out_after_confirmation"
    findings = [f for f in stuck_jobs() if f.kind == "chain_tx"]
    assert [f.state for f in findings] == ["needs_review"] and findings[0].id == record.tx_hash
    withdrawal.refresh_from_db()
    assert withdrawal.state == Withdrawal.State.PAID and _chain_clearing_u() == AMOUNT_U  # never reversed by itself
    chain_payouts_track()  # flagged once
    assert len([f for f in stuck_jobs() if f.kind == "chain_tx"]) == 1
    assert_ledger_ok()


def test_detector_lists_unconfirmed_transactions_past_the_threshold(
    chain: Any, settings: Any, onchain_player: Any, finance: Any
) -> None:
    from ops.stuck import stuck_jobs

    chain.bridge.set_automine(False)  # a stuck transaction: never mined
    withdrawal = _approved(onchain_player, finance, Account.create().address)
    payout_submit(withdrawal_id=withdrawal.pk)
    settings.CHAIN_STUCK_UNCONFIRMED_AFTER_MINUTES = 60
    assert [f for f in stuck_jobs() if f.kind == "chain_tx"] == []
    settings.CHAIN_STUCK_UNCONFIRMED_AFTER_MINUTES = 0
    findings = [f for f in stuck_jobs() if f.kind == "chain_tx"]
    record = ChainTransfer.objects.get()
    assert len(findings) == 1 and findings[0].id == record.tx_hash and findings[0].state == "broadcast"
    assert f"withdrawal={withdrawal.pk} nonce=0" in findings[0].detail


def test_replacing_a_stuck_transaction_reuses_the_nonce_under_four_eyes(
    chain: Any,
    onchain_player: Any,
    finance: Any,
    make_staff: Any,
    assert_ledger_ok: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    from ops.actors import SystemActor
    from ops.approvals import SecondOperatorRequired
    from ops.errors import ApplicationError
    from payouts.chain.errors import ReplacementRefused
    from payouts.chain.payouts import chain_transfer_replace

    chain.bridge.set_automine(False)
    dest = Account.create().address
    withdrawal = _approved(onchain_player, finance, dest)
    payout_submit(withdrawal_id=withdrawal.pk)
    stuck = ChainTransfer.objects.get()
    fees = {
        "max_fee_per_gas_wei": int(stuck.max_fee_per_gas) * 2,
        "max_priority_fee_per_gas_wei": int(stuck.max_priority_fee_per_gas) * 2,
    }
    for actor in (onchain_player, make_staff(role="support"), SystemActor("payout-worker")):
        with pytest.raises(ApplicationError):
            chain_transfer_replace(transfer_id=stuck.pk, acting_user=actor, reason="stuck", **fees)
    with pytest.raises(ApplicationError):
        chain_transfer_replace(transfer_id=stuck.pk, acting_user=finance, reason=" ", **fees)
    with pytest.raises(ReplacementRefused):  # fees not raised enough
        chain_transfer_replace(
            transfer_id=stuck.pk,
            acting_user=finance,
            reason="stuck",
            max_fee_per_gas_wei=int(stuck.max_fee_per_gas),
            max_priority_fee_per_gas_wei=int(stuck.max_priority_fee_per_gas),
        )
    assert ChainTransfer.objects.count() == 1

    proposal = chain_transfer_replace(transfer_id=stuck.pk, acting_user=finance, reason="stuck 2h", **fees)
    assert proposal.state == "pending" and ChainTransfer.objects.count() == 1  # one operator signs nothing
    with pytest.raises(SecondOperatorRequired):
        chain_transfer_replace(transfer_id=stuck.pk, acting_user=finance, reason="stuck 2h", **fees)
    with django_capture_on_commit_callbacks(execute=True):
        applied = chain_transfer_replace(
            transfer_id=stuck.pk, acting_user=make_staff(role="finance"), reason="agreed", **fees
        )
    assert applied.pk == proposal.pk and applied.state == "applied"
    replacement = ChainTransfer.objects.get(seq=1)
    assert replacement.nonce == stuck.nonce and replacement.tx_hash != stuck.tx_hash
    assert replacement.tx_hash == applied.result["replacement_tx_hash"]
    assert replacement.status == ChainTransfer.Status.BROADCAST  # sent after commit
    with pytest.raises(ReplacementRefused):  # the original is already replaced
        chain_transfer_replace(transfer_id=stuck.pk, acting_user=finance, reason="again", **fees)
    chain.bridge.set_automine(True)
    chain.bridge.mine(1)
    chain_payouts_track()
    _confirm(chain)
    withdrawal.refresh_from_db()
    stuck.refresh_from_db()
    assert withdrawal.state == Withdrawal.State.PAID
    assert stuck.status == ChainTransfer.Status.DROPPED
    assert len(chain.transfers(receiver=dest)) == 1  # one nonce: only one of the two could be mined
    assert_ledger_ok()


def test_hot_wallet_balances_are_metrics(chain: Any) -> None:
    from payouts.chain.metrics import HOT_WALLET_GAS, HOT_WALLET_LOW, HOT_WALLET_TOKEN
    from payouts.chain.tasks import check_hot_wallet

    result = check_hot_wallet()
    assert result["token_u"] == chain.token_balance(chain.hot.address) == 1_000 * 10**6
    assert HOT_WALLET_TOKEN._value.get() == 1_000 * 10**6
    assert HOT_WALLET_GAS._value.get() == chain.gas_balance(chain.hot.address)
    assert HOT_WALLET_LOW.labels(asset="token")._value.get() == 0  # 1000 USDC is the default alert level
    assert result["token_low"] is False


def test_beat_tasks_skip_quietly_when_the_rail_is_unused_and_fail_loudly_when_work_waits(
    settings: Any, onchain_player: Any, finance: Any, make_chain: Any
) -> None:
    from ops.models import WorkerRun
    from payouts.chain.errors import ChainNotConfigured
    from payouts.chain.tasks import check_hot_wallet, scan_chain_deposits, track_chain_payouts

    settings.CHAIN_RPC_URL = ""
    for task in (track_chain_payouts, scan_chain_deposits, check_hot_wallet):
        assert task() == {"skipped": "on-chain rail not configured"}
    assert not WorkerRun.objects.filter(worker__startswith="chain").exists()

    make_chain()
    withdrawal = _approved(onchain_player, finance, Account.create().address)
    payout_submit(withdrawal_id=withdrawal.pk)
    report = track_chain_payouts()
    assert report["checked"] == 1
    assert WorkerRun.objects.get(worker="chain_payouts").result == "ok"
    settings.CHAIN_RPC_URL = ""  # misconfigured while a transfer is open: the run fails, and is recorded
    with pytest.raises(ChainNotConfigured):
        track_chain_payouts()
    failed = WorkerRun.objects.get(worker="chain_payouts", result="failed")
    assert "CHAIN_RPC_URL" in failed.detail["error"]


def test_a_signed_but_unsent_transaction_does_not_block_later_payouts(
    chain: Any, make_player: Any, fund: Any, finance: Any, assert_ledger_ok: Any
) -> None:
    withdrawals = []
    for _ in range(2):
        player = make_player()
        fund(player, AMOUNT_U)
        withdrawals.append(_approved(player, finance, Account.create().address))
    chain.bridge.fail_sends = 1
    assert payout_submit(withdrawal_id=withdrawals[0].pk).status == "ambiguous"  # nonce 0 signed, never sent
    later = payout_submit(withdrawal_id=withdrawals[1].pk)  # nonce 1: the node refuses it while 0 is missing
    assert later.status == "ambiguous" and "rejected" in later.detail
    assert sorted(ChainTransfer.objects.values_list("nonce", "status")) == [
        (0, ChainTransfer.Status.SIGNED),
        (1, ChainTransfer.Status.SIGNED),
    ]
    assert not ChainTransfer.objects.exclude(review_reason="").exists()

    chain_payouts_track()  # the tracker sends them in nonce order: the gap closes
    assert sorted(ChainTransfer.objects.values_list("status", flat=True)) == [ChainTransfer.Status.BROADCAST] * 2
    _confirm(chain)
    for withdrawal in withdrawals:
        withdrawal.refresh_from_db()
        assert withdrawal.state == Withdrawal.State.PAID
        assert chain.token_balance(withdrawal.destination["address"]) == AMOUNT_U
    assert_ledger_ok()


def test_a_nonce_taken_by_an_unknown_transaction_sends_the_payout_to_review(
    chain: Any, onchain_player: Any, finance: Any, assert_ledger_ok: Any
) -> None:
    dest = Account.create().address
    withdrawal = _approved(onchain_player, finance, dest)
    chain.bridge.fail_sends = 1
    assert payout_submit(withdrawal_id=withdrawal.pk).status == "ambiguous"  # nonce 0 signed, not sent
    # Someone else uses the hot wallet's key: nonce 0 goes to another transaction.
    with chain.bridge.lock:
        w3 = chain.bridge.w3
        other = chain.hot.sign_transaction(
            {
                "to": Account.create().address,
                "value": 1,
                "nonce": 0,
                "gas": 21_000,
                "maxFeePerGas": 10**10,
                "maxPriorityFeePerGas": 10**9,
                "chainId": w3.eth.chain_id,
                "type": 2,
            }
        )
        w3.eth.send_raw_transaction(other.raw_transaction)
    chain_payouts_track()
    record = ChainTransfer.objects.get()
    withdrawal.refresh_from_db()
    assert record.status == ChainTransfer.Status.DROPPED and record.evidence[-1]["event"] == "nonce_taken"
    assert withdrawal.state == Withdrawal.State.PAYOUT_FAILED  # manual review, funds still held
    assert balances(onchain_player).held_u == AMOUNT_U and _chain_clearing_u() == 0
    assert chain.transfers(receiver=dest) == []
    assert_ledger_ok()


def test_the_api_refuses_an_unchecksummed_destination(onchain_player: Any, api_client_for: Any) -> None:
    before = snapshot()
    response = api_client_for(onchain_player).post(
        "/v1/withdrawals",
        {
            "amount_u": AMOUNT_U,
            "currency": "USDC",
            "provider": "chain",
            "destination": {"address": "0x52908400098527886e0f7030069857d2e4169ee7"},
        },
        format="json",
        HTTP_IDEMPOTENCY_KEY="bad-address-1",
    )
    assert response.status_code == 400
    assert response["Content-Type"].startswith("application/problem+json")
    assert response.json()["type"] == "chain/invalid-address"
    assert snapshot() == before


def test_reconciliation_never_settles_an_open_transaction_and_it_cannot_be_resolved_by_hand(
    chain: Any, onchain_player: Any, finance: Any, settings: Any, assert_ledger_ok: Any
) -> None:
    from payouts.errors import InvalidTransition
    from payouts.reconciliation import payout_reconcile, resolution_blocker
    from payouts.services import withdrawal_resolve

    chain.bridge.set_automine(False)  # the transaction stays in the pool
    withdrawal = _approved(onchain_player, finance, Account.create().address)
    payout_submit(withdrawal_id=withdrawal.pk)
    result = payout_reconcile(withdrawal_id=withdrawal.pk)
    assert result.answer == "pending" and result.action == "none: no final answer yet"
    withdrawal.refresh_from_db()
    assert withdrawal.state == Withdrawal.State.PAYOUT_SUBMITTED
    assert "may still be mined" in resolution_blocker(withdrawal)
    settings.PAYOUT_MANUAL_RESOLVE_AFTER_MINUTES = 0
    before = snapshot()
    for decision in ("refund_failed", "confirm_sent"):
        with pytest.raises(InvalidTransition, match="may still be mined"):
            withdrawal_resolve(withdrawal_id=withdrawal.pk, acting_user=finance, decision=decision, reason="stuck")
    assert snapshot() == before
    chain.bridge.set_automine(True)
    chain.bridge.mine(1)
    _confirm(chain)
    withdrawal.refresh_from_db()
    assert withdrawal.state == Withdrawal.State.PAID
    assert_ledger_ok()
