"""Inclusion proofs read from the tree stored at lock (rounds/proofs.py): the same proofs, in a few queries.

The level-by-level tree (`merkle_levels`, `level_path`) is checked against the RFC 6962 recursion
(`merkle_root`, `merkle_proof`) for every size from 1 to 70 and every index, then at larger sizes at random
indices; on PostgreSQL every bet's served proof is compared with the proof computed from every leaf, the
API's answer byte for byte with the answer computed the old way, the query count with the round's size,
and every kind of stale or damaged stored tree is refused rather than served.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from accounts.models import User
from ledger.services import external_account, transfer
from ops.actors import BEAT, SystemActor
from rounds.domain.errors import InvalidMerkleInput
from rounds.domain.merkle import bet_leaf, level_path, merkle_levels, merkle_proof, merkle_root
from rounds.errors import ProofMismatch
from rounds.models import Bet, LeafPosition, MerkleLevel, Round
from rounds.proofs import merkle_tree_store
from rounds.selectors import bet_proof, bet_record, round_leaves
from rounds.services import round_lock


def leaf_n(i: int) -> bytes:
    return hashlib.sha256(b"\x00" + str(i).encode()).digest()


def proof_from_levels(levels: list[bytes], index: int) -> list[tuple[str, str]]:
    """Read a proof out of stored levels the way rounds/proofs.py does (sibling = node ^ 1, 32 bytes each)."""
    return [
        (levels[level][32 * node : 32 * node + 32].hex(), side)
        for level, node, side in level_path(len(levels[0]) // 32, index)
    ]


# --- The tree, level by level, is RFC 6962's -----------------------------------------------------------


@pytest.mark.parametrize("size", range(1, 71))
def test_levels_build_the_rfc6962_tree_and_its_proofs(size: int) -> None:
    leaves = [leaf_n(i) for i in range(size)]
    levels = merkle_levels(leaves)
    assert levels[0] == b"".join(leaves)
    assert levels[-1].hex() == merkle_root(leaves)
    assert [len(level) // 32 for level in levels[1:]] == [
        (len(below) // 32 + 1) // 2 for below in levels[:-1]
    ]  # each level halves, rounding up
    for index in range(size):
        assert proof_from_levels(levels, index) == merkle_proof(leaves, index)


@pytest.mark.parametrize("size", [127, 128, 129, 1000, 1023, 1025, 4097])
def test_levels_give_the_same_proofs_at_larger_sizes(size: int) -> None:
    leaves = [leaf_n(i) for i in range(size)]
    levels = merkle_levels(leaves)
    assert levels[-1].hex() == merkle_root(leaves)
    for index in {0, size - 1, *random.Random(size).sample(range(size), 40)}:
        assert proof_from_levels(levels, index) == merkle_proof(leaves, index)


def test_no_leaves_no_levels_and_paths_refuse_bad_indexes() -> None:
    assert merkle_levels([]) == []
    assert level_path(1, 0) == []
    for size, index in [(0, 0), (3, 3), (3, -1), (2, True)]:
        with pytest.raises(InvalidMerkleInput):
            level_path(size, index)
    with pytest.raises(InvalidMerkleInput):
        merkle_levels([b"short"])


# --- Stored at lock, served from the store --------------------------------------------------------------


def _locked_round(
    open_round: Callable[..., Any], clock: Any, size: int, code: str = "20250908"
) -> tuple[Round, list[Bet]]:
    """Open a round, place `size` bets through bet_place, and lock it through round_lock."""
    from rounds.tests.factories import BetFactory

    round_obj = open_round(code)
    bets = [BetFactory.create(round=round_obj, side=("UP", "DOWN")[i % 2], stake_u=1_000_000) for i in range(size)]
    clock.set(round_obj.lock_at)
    locked, changed = round_lock(code=round_obj.code, acting_user=BEAT)
    assert changed and locked.status == Round.Status.LOCKED
    return locked, bets


def _reference_proofs(round_obj: Round) -> dict[str, list[tuple[str, str]]]:
    """Every bet's proof computed from every leaf (what the endpoint served before the tree was stored)."""
    leaves = round_leaves(round_obj=round_obj)
    ids = [str(b) for b in Bet.objects.filter(round=round_obj).order_by("bet_id").values_list("bet_id", flat=True)]
    return {bet_id: merkle_proof(leaves, index) for index, bet_id in enumerate(ids)}


def _forget_tree(round_obj: Round) -> None:
    """Make the round look locked before trees were stored."""
    LeafPosition.objects.filter(bet__round=round_obj).delete()
    MerkleLevel.objects.filter(round=round_obj).delete()


@pytest.mark.django_db
@pytest.mark.parametrize("size", [1, 2, 3, 5, 8, 13, 33])
def test_every_bet_is_served_the_proof_computed_from_every_leaf_byte_for_byte(
    size: int, open_round: Callable[..., Any], clock: Any, api_client_for: Callable[..., Any]
) -> None:
    round_obj, bets = _locked_round(open_round, clock, size)
    assert MerkleLevel.objects.filter(round=round_obj).count() == (size - 1).bit_length() + 1
    assert LeafPosition.objects.filter(bet__round=round_obj).count() == size
    expected = _reference_proofs(round_obj)
    answers = {}
    for bet in bets:
        served = bet_proof(user=bet.player, bet_id=str(bet.bet_id))
        assert served.proof == expected[str(bet.bet_id)] and served.root == round_obj.merkle_root
        response = api_client_for(bet.player).get(f"/v1/bets/{bet.bet_id}/proof")
        assert response.status_code == 200
        answers[bet.pk] = response.content
    # A round locked before trees were stored: computed from every leaf, the very same bytes.
    _forget_tree(round_obj)
    for bet in bets:
        assert api_client_for(bet.player).get(f"/v1/bets/{bet.bet_id}/proof").content == answers[bet.pk]


def _bulk_bets(round_obj: Round, count: int) -> None:
    """Write `count` bets straight into rounds_bet, each with the leaf bet_place would store, by new players;
    all name the round's pool as their account. Their stakes reach the pool in one ledger transfer (the lock
    refuses a pool that does not hold the stakes)."""
    players = User.objects.bulk_create([User(email=f"bulk-{round_obj.code}-{i}@example.com") for i in range(count)])
    bets = []
    for i, player in enumerate(players):
        bet = Bet(
            round=round_obj,
            player=player,
            account_id=round_obj.pool_account_id,
            side=("UP", "DOWN")[i % 2],
            stake_u=1_000_000 + i,
            placed_at=round_obj.open_at + timedelta(seconds=i),
        )
        bet.leaf = bet_leaf(**bet_record(bet=bet))  # type: ignore[arg-type]
        bets.append(bet)
    Bet.objects.bulk_create(bets)
    if bets:
        transfer(
            source=external_account(provider="test", currency=round_obj.currency),
            destination=round_obj.pool_account,
            amount_u=sum(bet.stake_u for bet in bets),
            type="test_stakes",
            reference=f"test-bulk-stakes:{round_obj.code}",
            actor=SystemActor("test"),
        )


@pytest.mark.django_db
def test_a_proof_costs_the_same_few_queries_in_a_round_of_10_or_500_bets(
    open_round: Callable[..., Any], clock: Any
) -> None:
    small, _ = _locked_round(open_round, clock, 10)
    large = open_round("20250910")
    _bulk_bets(large, 500)
    clock.set(large.lock_at)
    large, _ = round_lock(code=large.code, acting_user=BEAT)
    assert MerkleLevel.objects.filter(round=large).count() == 10  # 500 leaves, 250, 125, 63, 32, ... 1
    counts = {}
    for round_obj in (small, large):
        expected = _reference_proofs(round_obj)
        queries = set()
        for bet in Bet.objects.filter(round=round_obj).select_related("player"):
            with CaptureQueriesContext(connection) as captured:
                served = bet_proof(user=bet.player, bet_id=str(bet.bet_id))
            assert served.proof == expected[str(bet.bet_id)]
            queries.add(len(captured))
        counts[round_obj.code] = queries
    assert counts[small.code] == counts[large.code] == {3}  # the bet with its round, its player, the siblings


@pytest.mark.django_db
def test_a_round_without_bets_stores_no_tree(open_round: Callable[..., Any], clock: Any) -> None:
    round_obj, _ = _locked_round(open_round, clock, 0)
    assert round_obj.merkle_root == merkle_root([])
    assert not MerkleLevel.objects.filter(round=round_obj).exists()


# --- Never a wrong proof -------------------------------------------------------------------------------


def _refused(api_client_for: Callable[..., Any], bet: Bet) -> None:
    with pytest.raises(ProofMismatch):
        bet_proof(user=bet.player, bet_id=str(bet.bet_id))
    response = api_client_for(bet.player).get(f"/v1/bets/{bet.bet_id}/proof")
    assert response.status_code == 500 and response.json()["type"] == "rounds/proof-mismatch"


@pytest.mark.django_db
def test_a_stored_hash_changed_after_lock_is_refused(
    open_round: Callable[..., Any], clock: Any, api_client_for: Callable[..., Any]
) -> None:
    round_obj, _ = _locked_round(open_round, clock, 3)
    expected = _reference_proofs(round_obj)
    first, _, third = Bet.objects.filter(round=round_obj).select_related("player").order_by("leaf_position__position")
    level = MerkleLevel.objects.get(round=round_obj, level=0)
    hashes = bytearray(level.hashes)
    hashes[32] ^= 1  # leaf 1: the first bet's sibling
    MerkleLevel.objects.filter(pk=level.pk).update(hashes=bytes(hashes))
    _refused(api_client_for, first)
    # The third bet's proof does not pass through leaf 1 (its siblings: node 0 of level 1): still served.
    assert bet_proof(user=third.player, bet_id=str(third.bet_id)).proof == expected[str(third.bet_id)]


@pytest.mark.django_db
def test_a_published_root_that_is_not_the_stored_trees_is_refused(
    open_round: Callable[..., Any], clock: Any, api_client_for: Callable[..., Any]
) -> None:
    round_obj, bets = _locked_round(open_round, clock, 4)
    Round.objects.filter(pk=round_obj.pk).update(merkle_root="00" * 32)
    for bet in bets:
        _refused(api_client_for, bet)
    _forget_tree(round_obj)  # computed from every leaf: refused all the same
    _refused(api_client_for, bets[0])


@pytest.mark.django_db
def test_swapped_positions_or_a_missing_level_are_refused(
    open_round: Callable[..., Any], clock: Any, api_client_for: Callable[..., Any]
) -> None:
    round_obj, bets = _locked_round(open_round, clock, 5)
    one, two = (LeafPosition.objects.get(bet=bet) for bet in bets[:2])
    LeafPosition.objects.filter(pk=one.pk).update(position=two.position)
    LeafPosition.objects.filter(pk=two.pk).update(position=one.position)
    _refused(api_client_for, bets[0])
    _refused(api_client_for, bets[1])
    LeafPosition.objects.filter(pk=one.pk).update(position=one.position)
    LeafPosition.objects.filter(pk=two.pk).update(position=two.position)
    assert (
        bet_proof(user=bets[0].player, bet_id=str(bets[0].bet_id)).proof
        == _reference_proofs(round_obj)[str(bets[0].bet_id)]
    )
    MerkleLevel.objects.filter(round=round_obj, level=1).delete()
    _refused(api_client_for, bets[0])
    LeafPosition.objects.filter(pk=one.pk).update(position=99)
    _refused(api_client_for, bets[0])


@pytest.mark.django_db
def test_a_lock_whose_tree_does_not_end_in_its_root_is_refused_and_changes_nothing(
    open_round: Callable[..., Any], clock: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rounds.tests.factories import BetFactory

    round_obj = open_round("20250908")
    BetFactory.create(round=round_obj, side="UP", stake_u=1_000_000)
    BetFactory.create(round=round_obj, side="DOWN", stake_u=1_000_000)
    monkeypatch.setattr("rounds.services.merkle_root", lambda leaves: "00" * 32)
    clock.set(round_obj.lock_at)
    with pytest.raises(ProofMismatch):
        round_lock(code=round_obj.code, acting_user=BEAT)
    round_obj.refresh_from_db()
    assert round_obj.status == Round.Status.OPEN and round_obj.merkle_root == ""
    assert not MerkleLevel.objects.exists() and not LeafPosition.objects.exists()


@pytest.mark.django_db
def test_leaves_that_are_not_the_rounds_bets_are_refused(open_round: Callable[..., Any]) -> None:
    from rounds.tests.factories import BetFactory

    round_obj = open_round("20250908")
    for side in ("UP", "DOWN", "UP"):
        BetFactory.create(round=round_obj, side=side, stake_u=1_000_000)
    leaves = round_leaves(round_obj=round_obj)[:2]
    with pytest.raises(ProofMismatch), transaction.atomic():
        merkle_tree_store(round_obj=round_obj, leaves=leaves, root=merkle_root(leaves))
    assert not MerkleLevel.objects.exists() and not LeafPosition.objects.exists()
