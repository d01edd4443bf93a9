"""Configuration of the on-chain rail: the hot wallet key comes from the environment and is never shown."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from eth_account import Account

from payouts.chain.config import HotWalletKey, chain_settings, hot_wallet_key
from payouts.chain.errors import ChainNotConfigured


def test_the_key_is_read_from_the_environment_and_never_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    account = Account.create()
    secret = bytes(account.key).hex()
    monkeypatch.setenv("CHAIN_HOT_WALLET_KEY", "0x" + secret)
    key = hot_wallet_key()
    assert isinstance(key, HotWalletKey) and key.address == account.address
    for text in (repr(key), str(key), f"{key}", f"{key!r}"):
        assert secret not in text and "key hidden" in text


def test_a_bad_or_missing_key_is_refused_without_echoing_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CHAIN_HOT_WALLET_KEY", raising=False)
    with pytest.raises(ChainNotConfigured, match="not set"):
        hot_wallet_key()
    monkeypatch.setenv("CHAIN_HOT_WALLET_KEY", "0xnot-a-key-but-secret-looking-text")
    with pytest.raises(ChainNotConfigured) as caught:
        hot_wallet_key()
    assert "secret-looking" not in str(caught.value) and caught.value.__cause__ is None


def test_settings_are_validated(settings: Any) -> None:
    settings.CHAIN_RPC_URL, settings.CHAIN_ID = "http://127.0.0.1:8545", 1
    settings.CHAIN_USDC_ADDRESS = "0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48"  # not checksummed
    with pytest.raises(ChainNotConfigured, match="EIP-55"):
        chain_settings()
    settings.CHAIN_USDC_ADDRESS = "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48"
    settings.CHAIN_CONFIRMATIONS = 0
    with pytest.raises(ChainNotConfigured, match="CHAIN_CONFIRMATIONS"):
        chain_settings()
    settings.CHAIN_CONFIRMATIONS = 12
    assert chain_settings().token_address == "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48"
    settings.CHAIN_RPC_URL = ""
    with pytest.raises(ChainNotConfigured, match="CHAIN_RPC_URL"):
        chain_settings()


def test_a_payout_never_logs_the_key(
    chain: Any, onchain_player: Any, finance: Any, caplog: pytest.LogCaptureFixture
) -> None:
    from ops.models import AuditRecord
    from payouts.chain.models import ChainTransfer
    from payouts.chain.payouts import chain_payouts_track
    from payouts.services import payout_submit, withdrawal_approve, withdrawal_request

    caplog.set_level(logging.DEBUG)
    withdrawal = withdrawal_request(
        user=onchain_player,
        amount_u=1_000_000,
        currency="USDC",
        provider="chain",
        destination={"address": Account.create().address},
    )
    withdrawal_approve(withdrawal_id=withdrawal.pk, acting_user=finance)
    payout_submit(withdrawal_id=withdrawal.pk)
    chain.bridge.mine(3)
    chain_payouts_track()
    secret = bytes(chain.hot.key).hex()
    assert caplog.records and all(secret not in r.getMessage() for r in caplog.records)
    stored = [str(v) for v in ChainTransfer.objects.values_list("raw_tx", "evidence", "tx_hash").get()]
    stored += [str(a.data) for a in AuditRecord.objects.all()]
    assert all(secret not in text for text in stored)
