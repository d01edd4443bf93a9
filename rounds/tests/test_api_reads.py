"""Read API: the current round, one round (with the reveal after settlement), own bets, inclusion proofs."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from ops.actors import BEAT
from rounds.domain.merkle import verify_proof

pytestmark = pytest.mark.django_db


def test_round_lifecycle_through_the_api(
    open_round: Callable[..., Any],
    place: Callable[..., Any],
    prices: Any,
    clock: Any,
    lock_and_reach_settlement: Callable[..., Any],
    api_client_for: Callable[..., Any],
    make_player: Callable[..., Any],
) -> None:
    from rounds.settlement import round_settle

    round_obj = open_round("20250908", reference="100")
    alice, bob = make_player(), make_player()
    mine = place(round_obj, "UP", 3_000_000, player=alice)
    place(round_obj, "DOWN", 1_000_000, player=bob)
    client = api_client_for(alice)

    current = client.get("/v1/rounds/current").json()
    assert current["code"] == "20250908" and current["status"] == "OPEN"
    assert current["pools"] == {
        "up_u": 3_000_000,
        "down_u": 1_000_000,
        "total_u": 4_000_000,
        "up_bets": 1,
        "down_bets": 1,
    }
    assert current["commit"] == round_obj.commit and current["settlement"] is None
    assert "salt" not in str(current)
    from rest_framework.test import APIClient

    anonymous = APIClient()
    assert anonymous.get("/rounds/current").json()["commit"] == round_obj.commit  # the manual's curl
    assert anonymous.get("/v1/bets").status_code == 401
    early_proof = client.get(f"/v1/bets/{mine.bet_id}/proof")
    assert early_proof.status_code == 409 and early_proof.json()["type"] == "rounds/proof-not-ready"

    lock_and_reach_settlement(round_obj)
    proof = client.get(f"/v1/bets/{mine.bet_id}/proof").json()
    steps = [(step["sibling"], step["position"]) for step in proof["proof"]]
    assert proof["root"] == client.get("/v1/rounds/20250908").json()["merkle_root"]
    assert verify_proof(leaf=bytes.fromhex(proof["leaf"]), proof=steps, root=proof["root"])
    assert api_client_for(bob).get(f"/v1/bets/{mine.bet_id}/proof").status_code == 404

    prices.set(round_obj.open_at.date(), "100.1")
    clock.set(round_obj.settle_after + timedelta(minutes=1))
    round_settle(code=round_obj.code, acting_user=BEAT)
    detail = client.get("/v1/rounds/20250908").json()
    assert detail["settlement"]["result"] == "UP" and detail["settlement"]["close"] == "100.1"
    assert detail["settlement"]["fee_u"] == 40_000
    assert detail["settlement"]["reveal"]["salt"] == round_obj.salt
    assert len(detail["settlement"]["price_evidence"]) == 2
    bets = client.get("/v1/bets").json()
    assert bets["count"] == 1 and bets["results"][0]["payout_u"] == 3_960_000
    wallet = client.get("/v1/wallet").json()["balances"][0]
    assert wallet["available_u"] == 3_960_000 and wallet["in_open_bets_u"] == 0
    assert client.get("/v1/rounds/20990101").status_code == 404


def test_metrics_expose_betting_and_round_families(
    open_round: Callable[..., Any],
    place: Callable[..., Any],
    client: Any,
) -> None:
    round_obj = open_round("20250908")
    place(round_obj, "UP", 2_000_000)
    body = client.get("/metrics").content.decode()
    assert (
        'betting_stakes_u{currency="USDC",side="UP"} 2e+06' in body
        or 'betting_stakes_u{currency="USDC",side="UP"} 2000000.0' in body
    )
    assert 'betting_bets_total{side="UP"} 1.0' in body
    assert 'round_status{code="20250908",status="OPEN"} 1.0' in body
    assert "betting_fees_u_total" in body or "betting_fees_u" in body
