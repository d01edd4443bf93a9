"""Tests for the round protocol (rounds.domain commitment, merkle, reveal): canonical JSON, commit, Merkle, reveal."""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rounds.domain.calendar import session_times
from rounds.domain.commitment import (
    COMMIT_FIELDS,
    RULES_VERSION,
    commit_params,
    format_instant,
    format_price,
    new_salt,
    protocol_json,
    round_commit,
)
from rounds.domain.errors import (
    InvalidBetRecord,
    InvalidCommitParams,
    InvalidMerkleInput,
    NotCanonical,
    UnknownBet,
    VerificationError,
)
from rounds.domain.merkle import (
    EMPTY_ROOT,
    bet_leaf,
    bet_leaves,
    merkle_proof,
    merkle_root,
    proof_for_bet,
    sort_bets,
    verify_proof,
)
from rounds.domain.pool import Result, Side, VoidReason, outcome, settle_pool
from rounds.domain.reveal import build_reveal, verify_reveal

FAST = settings(max_examples=200, deadline=None, database=None)
SALT = "ab" * 32
PREV = "cd" * 32


def leaf_n(i: int) -> bytes:
    """Return a distinct 32-byte leaf hash for index ``i``."""
    return hashlib.sha256(b"\x00" + str(i).encode()).digest()


def params_for(*, reference: str = "21000.50", salt: str = SALT) -> dict[str, object]:
    """Commit params for the 2025-11-28 round."""
    times = session_times(day=date(2025, 11, 28))
    return commit_params(
        code=times.code,
        instrument="NDX",
        reference_close=Decimal(reference),
        open_utc=times.open_utc,
        lock_utc=times.lock_utc,
        close_utc=times.close_utc,
        settle_after_utc=times.settle_after_utc,
        fee_bps=500,
        min_stake_u=1_000_000,
        previous_commit=PREV,
        salt=salt,
    )


def bet(bet_id: str, side: str, stake_u: int, *, minute: int = 0) -> dict[str, object]:
    """Return a bet record placed on 2025-11-28 before lock."""
    placed = datetime(2025, 11, 28, 15, minute, tzinfo=UTC)
    return {
        "bet_id": bet_id,
        "player_id": f"p-{bet_id}",
        "side": side,
        "stake_u": stake_u,
        "placed_at": format_instant(at=placed),
    }


BETS = [
    bet("b-003", "UP", 2_000_000),
    bet("b-001", "UP", 1_000_000, minute=1),
    bet("b-002", "DOWN", 3_000_000, minute=2),
    bet("b-004", "DOWN", 1_500_000, minute=3),
]


def stakes_of(bets: list[dict[str, object]]) -> list[tuple[str, Side, int]]:
    """Return settle_pool stake rows for bet records."""
    rows = []
    for record in bets:
        stake = record["stake_u"]
        assert isinstance(stake, int)
        rows.append((str(record["bet_id"]), Side(str(record["side"])), stake))
    return rows


def settled_round(*, bets: list[dict[str, object]], close: str = "21010.25") -> tuple[dict[str, object], str, str]:
    """Return (reveal, commit, merkle_root) for an honestly settled round."""
    params = params_for()
    commit = round_commit(params=params)
    root = merkle_root(bet_leaves(bets=bets))
    result = outcome(reference=Decimal("21000.50"), close=Decimal(close))
    settlement = settle_pool(stakes=stakes_of(bets), result=result, fee_bps=500)
    evidence = [
        {
            "source": "a",
            "price": close,
            "fetched_at": "2025-11-28T18:06:00Z",
            "url": "u",
            "error": None,
        },
        {
            "source": "b",
            "price": close,
            "fetched_at": "2025-11-28T18:06:01Z",
            "url": "v",
            "error": None,
        },
    ]
    reveal = build_reveal(params=params, close=Decimal(close), evidence=evidence, settlement=settlement)
    return reveal, commit, root


# ---------------------------------------------------------------- canonical JSON


def test_canonical_json_sorts_keys_and_strips_space() -> None:
    assert protocol_json({"b": 1, "a": [True, None, "x"]}) == b'{"a":[true,null,"x"],"b":1}'


def test_canonical_json_is_stable_under_key_order() -> None:
    assert protocol_json({"x": 1, "y": 2}) == protocol_json({"y": 2, "x": 1})


@pytest.mark.parametrize("bad", [1.5, Decimal("1.5"), {1: "a"}, {"a": {1, 2}}, 2**53, object()])
def test_canonical_json_refuses_floats_and_odd_values(bad: object) -> None:
    with pytest.raises(NotCanonical) as refused:
        protocol_json(bad)
    assert isinstance(refused.value, VerificationError)  # a domain error, wrapping the kernel's


def test_canonical_json_strenum_is_plain_string() -> None:
    assert protocol_json({"side": Side.UP}) == b'{"side":"UP"}'


# ---------------------------------------------------------------- canonical values


@pytest.mark.parametrize(
    ("price", "text"),
    [
        ("21000.5000", "21000.5"),
        ("21000", "21000"),
        ("1E+2", "100"),
        ("0.00150", "0.0015"),
        ("12345678901234567890123456789.125", "12345678901234567890123456789.125"),
    ],
)
def test_format_price(price: str, text: str) -> None:
    assert format_price(price=Decimal(price)) == text


def test_format_instant() -> None:
    est = datetime(2025, 11, 28, 13, 0, tzinfo=UTC) - timedelta(hours=5)
    assert format_instant(at=datetime(2025, 11, 28, 18, 0, tzinfo=UTC)) == "2025-11-28T18:00:00Z"
    assert format_instant(at=est.astimezone(UTC)) == "2025-11-28T08:00:00Z"
    assert format_instant(at=datetime(2025, 1, 2, 3, 4, 5, 6, tzinfo=UTC)) == "2025-01-02T03:04:05.000006Z"


# ---------------------------------------------------------------- commit


def test_commit_params_canonical_set() -> None:
    params = params_for()
    assert tuple(sorted(params)) == COMMIT_FIELDS
    assert params["reference_close"] == "21000.5"
    assert params["lock_utc"] == "2025-11-28T17:59:59Z"
    assert params["settle_after_utc"] == "2025-11-28T18:05:00Z"
    assert params["rules_version"] == RULES_VERSION


def test_round_commit_is_sha256_of_canonical_json() -> None:
    params = params_for()
    expected = hashlib.sha256(protocol_json(params)).hexdigest()
    assert round_commit(params=params) == expected
    assert round_commit(params=dict(reversed(list(params.items())))) == expected


def test_commit_changes_with_any_parameter() -> None:
    base = round_commit(params=params_for())
    assert round_commit(params=params_for(reference="21000.51")) != base
    assert round_commit(params=params_for(salt="ef" * 32)) != base


def test_first_round_has_null_previous_commit() -> None:
    params = params_for()
    params["previous_commit"] = None
    assert len(round_commit(params=params)) == 64


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("salt", "AB" * 32),
        ("salt", "ab" * 16),
        ("previous_commit", "xyz"),
        ("fee_bps", 10_001),
        ("fee_bps", True),
        ("min_stake_u", 0),
        ("reference_close", "21000.50"),
        ("reference_close", 21000),
        ("lock_utc", "2025-11-28T17:59:59+00:00"),
        ("lock_utc", "2025-11-28T18:00:00Z"),
        ("code", "2025-11-28"),
        ("instrument", ""),
    ],
)
def test_round_commit_rejects_non_canonical_params(key: str, value: object) -> None:
    params = params_for()
    params[key] = value
    with pytest.raises(InvalidCommitParams):
        round_commit(params=params)


def test_round_commit_rejects_missing_or_extra_keys() -> None:
    params = params_for()
    with pytest.raises(InvalidCommitParams):
        round_commit(params={**params, "extra": 1})
    del params["salt"]
    with pytest.raises(InvalidCommitParams):
        round_commit(params=params)


def test_new_salt() -> None:
    salts = {new_salt() for _ in range(20)}
    assert len(salts) == 20
    assert all(len(s) == 64 and int(s, 16) >= 0 for s in salts)


# ---------------------------------------------------------------- Merkle tree


def test_empty_root_is_sha256_of_empty_string() -> None:
    assert merkle_root([]) == EMPTY_ROOT == hashlib.sha256(b"").hexdigest()


def test_rfc6962_shapes() -> None:
    a, b, c = leaf_n(0), leaf_n(1), leaf_n(2)

    def node(x: bytes, y: bytes) -> bytes:
        return hashlib.sha256(b"\x01" + x + y).digest()

    assert merkle_root([a]) == a.hex()
    assert merkle_root([a, b]) == node(a, b).hex()
    assert merkle_root([a, b, c]) == node(node(a, b), c).hex()


def test_bet_leaf_is_prefixed_hash_of_canonical_json() -> None:
    record = bet("b-1", "UP", 5)
    expected = hashlib.sha256(b"\x00" + protocol_json(record)).digest()
    assert bet_leaf(**record) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize("size", range(1, 18))
def test_every_proof_verifies(size: int) -> None:
    leaves = [leaf_n(i) for i in range(size)]
    root = merkle_root(leaves)
    for index in range(size):
        proof = merkle_proof(leaves, index)
        assert verify_proof(leaf=leaves[index], proof=proof, root=root)
        assert len(proof) <= (size - 1).bit_length()
        assert not verify_proof(leaf=leaf_n(999), proof=proof, root=root)
        if size > 1:
            other = (index + 1) % size
            assert not verify_proof(leaf=leaves[other], proof=proof, root=root)


@pytest.mark.parametrize("size", [2, 5, 17])
def test_tampered_proof_fails(size: int) -> None:
    leaves = [leaf_n(i) for i in range(size)]
    root = merkle_root(leaves)
    proof = merkle_proof(leaves, 1)
    flipped = [(sib, "L" if pos == "R" else "R") for sib, pos in proof]
    assert not verify_proof(leaf=leaves[1], proof=flipped, root=root)
    changed = [("00" * 32, proof[0][1]), *proof[1:]]
    assert not verify_proof(leaf=leaves[1], proof=changed, root=root)
    assert not verify_proof(leaf=leaves[1], proof=proof[:-1], root=root)


@pytest.mark.parametrize(
    "proof",
    [[("zz", "L")], [("00" * 32, "X")], [("00" * 31, "L")], None, [("00" * 32,)]],
)
def test_malformed_proof_is_false_not_error(proof: Any) -> None:
    assert verify_proof(leaf=leaf_n(0), proof=proof, root=merkle_root([leaf_n(0)])) is False


def test_merkle_input_validation() -> None:
    with pytest.raises(InvalidMerkleInput):
        merkle_root([b"short"])
    with pytest.raises(InvalidMerkleInput):
        merkle_proof([leaf_n(0)], 1)
    with pytest.raises(InvalidMerkleInput):
        merkle_proof([], 0)


def test_leaf_order_is_by_bet_id_not_input_order() -> None:
    shuffled = [BETS[2], BETS[0], BETS[3], BETS[1]]
    assert merkle_root(bet_leaves(bets=BETS)) == merkle_root(bet_leaves(bets=shuffled))
    assert [b["bet_id"] for b in sort_bets(bets=BETS)] == [
        "b-001",
        "b-002",
        "b-003",
        "b-004",
    ]


def test_proof_for_bet() -> None:
    root = merkle_root(bet_leaves(bets=BETS))
    for record in BETS:
        proof = proof_for_bet(bets=BETS, bet_id=str(record["bet_id"]))
        assert verify_proof(leaf=bet_leaf(**record), proof=proof, root=root)  # type: ignore[arg-type]
    with pytest.raises(UnknownBet):
        proof_for_bet(bets=BETS, bet_id="nope")


@pytest.mark.parametrize(
    "bad",
    [
        {**BETS[0], "stake_u": 0},
        {**BETS[0], "stake_u": 1.0},
        {**BETS[0], "stake_u": True},
        {**BETS[0], "side": "VOID"},
        {**BETS[0], "bet_id": ""},
        {**BETS[0], "extra": 1},
    ],
)
def test_invalid_bets_rejected(bad: dict[str, object]) -> None:
    with pytest.raises(InvalidBetRecord):
        bet_leaves(bets=[bad])


def test_duplicate_bet_ids_rejected() -> None:
    with pytest.raises(InvalidBetRecord):
        bet_leaves(bets=[BETS[0], {**BETS[0], "stake_u": 7}])


bet_sets = st.lists(
    st.tuples(
        st.text(min_size=1, max_size=12),
        st.sampled_from(["UP", "DOWN"]),
        st.integers(min_value=1, max_value=2**53 - 1),
    ),
    max_size=40,
    unique_by=lambda row: row[0],
)


@FAST
@given(rows=bet_sets, data=st.data())
def test_random_bet_sets_prove_every_bet(rows: list[tuple[str, str, int]], data: st.DataObject) -> None:
    bets = [{"bet_id": i, "player_id": "p", "side": s, "stake_u": a, "placed_at": "t"} for i, s, a in rows]
    root = merkle_root(bet_leaves(bets=bets))
    if not bets:
        assert root == EMPTY_ROOT
        return
    permuted = data.draw(st.permutations(bets))
    assert merkle_root(bet_leaves(bets=permuted)) == root
    target = data.draw(st.sampled_from(bets))
    proof = proof_for_bet(bets=bets, bet_id=str(target["bet_id"]))
    assert verify_proof(leaf=bet_leaf(**target), proof=proof, root=root)  # type: ignore[arg-type]
    stake = target["stake_u"]
    assert isinstance(stake, int)
    forged = {**target, "stake_u": stake % (2**53 - 1) + 1}
    assert not verify_proof(leaf=bet_leaf(**forged), proof=proof, root=root)  # type: ignore[arg-type]


# ---------------------------------------------------------------- reveal verification


def test_honest_round_passes() -> None:
    reveal, commit, root = settled_round(bets=BETS)
    report = verify_reveal(reveal=reveal, commit=commit, bets=BETS, merkle_root=root)
    assert report.status == "PASS", report.checks
    assert report.failed_parts == ()
    assert [c.part for c in report.checks] == [
        "commit",
        "merkle",
        "bets",
        "evidence",
        "result",
        "payouts",
    ]
    assert reveal["result"] == "UP" and "salt" not in reveal["params"]  # type: ignore[operator]


def test_reveal_is_canonical_json_serialisable() -> None:
    reveal, _, _ = settled_round(bets=BETS)
    assert protocol_json(reveal).startswith(b'{"breakage_u":')


def failing(reveal: Mapping[str, object], commit: str, bets: list[dict[str, object]], root: str) -> tuple[str, ...]:
    """Return the failed part names."""
    return verify_reveal(reveal=reveal, commit=commit, bets=bets, merkle_root=root).failed_parts


def test_modified_salt_fails_commit() -> None:
    reveal, commit, root = settled_round(bets=BETS)
    assert failing({**reveal, "salt": "ef" * 32}, commit, BETS, root) == ("commit",)


def test_modified_parameter_fails_commit() -> None:
    reveal, commit, root = settled_round(bets=BETS)
    tampered = copy.deepcopy(reveal)
    tampered["params"]["instrument"] = "SPX"  # type: ignore[index]
    assert failing(tampered, commit, BETS, root) == ("commit",)


def test_modified_fee_fails_commit_and_payouts() -> None:
    reveal, commit, root = settled_round(bets=BETS)
    tampered = copy.deepcopy(reveal)
    tampered["params"]["fee_bps"] = 0  # type: ignore[index]
    assert failing(tampered, commit, BETS, root) == ("commit", "payouts")


def test_modified_reference_fails_commit_and_result() -> None:
    reveal, commit, root = settled_round(bets=BETS)
    tampered = copy.deepcopy(reveal)
    tampered["params"]["reference_close"] = "21020"  # type: ignore[index]
    assert failing(tampered, commit, BETS, root) == ("commit", "result", "payouts")


def test_modified_bet_fails_merkle() -> None:
    reveal, commit, root = settled_round(bets=BETS)
    tampered = [dict(b) for b in BETS]
    tampered[0]["player_id"] = "someone-else"
    assert failing(reveal, commit, tampered, root) == ("merkle",)


def test_dropped_bet_fails_merkle_and_payouts() -> None:
    reveal, commit, root = settled_round(bets=BETS)
    assert failing(reveal, commit, BETS[:-1], root) == ("merkle", "payouts")


def test_modified_payout_fails_payouts() -> None:
    reveal, commit, root = settled_round(bets=BETS)
    tampered = copy.deepcopy(reveal)
    tampered["payouts_u"]["b-001"] += 1  # type: ignore[index]
    tampered["breakage_u"] -= 1  # type: ignore[operator]
    assert failing(tampered, commit, BETS, root) == ("payouts",)


def test_modified_result_fails_result() -> None:
    reveal, commit, root = settled_round(bets=BETS)
    assert failing({**reveal, "result": "DOWN"}, commit, BETS, root) == ("result",)


def test_close_not_backed_by_evidence_fails() -> None:
    reveal, commit, root = settled_round(bets=BETS)
    assert failing({**reveal, "close": "20000"}, commit, BETS, root) == (
        "evidence",
        "result",
        "payouts",
    )
    lonely = {**reveal, "evidence": reveal["evidence"][:1]}  # type: ignore[index]
    assert failing(lonely, commit, BETS, root) == ("evidence",)


def test_late_or_small_bet_fails_bets() -> None:
    late = [
        *BETS,
        {**bet("b-005", "UP", 1_000_000), "placed_at": "2025-11-28T17:59:59Z"},
    ]
    small = [*BETS, bet("b-006", "UP", 999_999)]
    for bets in (late, small):
        reveal, commit, root = settled_round(bets=bets)
        assert failing(reveal, commit, bets, root) == ("bets",)


def test_wrong_commit_or_root_named() -> None:
    reveal, commit, root = settled_round(bets=BETS)
    assert failing(reveal, "00" * 32, BETS, root) == ("commit",)
    assert failing(reveal, commit, BETS, EMPTY_ROOT) == ("merkle",)


def test_tie_void_round_passes() -> None:
    reveal, commit, root = settled_round(bets=BETS, close="21000.5")
    assert reveal["result"] == "VOID" and reveal["void_reason"] == "TIE"
    assert verify_reveal(reveal=reveal, commit=commit, bets=BETS, merkle_root=root).ok


def test_oracle_failure_round_passes_and_fake_reason_fails() -> None:
    params = params_for()
    settlement = settle_pool(
        stakes=stakes_of(BETS),
        result=Result.VOID,
        fee_bps=500,
        void_reason=VoidReason.ORACLE_FAILURE,
    )
    reveal = build_reveal(params=params, close=None, evidence=[], settlement=settlement)
    commit, root = round_commit(params=params), merkle_root(bet_leaves(bets=BETS))
    assert failing(reveal, commit, BETS, root) == ()
    assert "result" in failing({**reveal, "void_reason": "TIE"}, commit, BETS, root)


def test_garbage_reveal_reports_instead_of_raising() -> None:
    report = verify_reveal(reveal={}, commit="x", bets=[{"nonsense": 1}], merkle_root="y")
    assert report.status == "FAIL"
    assert set(report.failed_parts) == {
        "commit",
        "merkle",
        "bets",
        "evidence",
        "result",
        "payouts",
    }


@FAST
@given(
    rows=st.lists(
        st.tuples(
            st.sampled_from(["UP", "DOWN"]),
            st.integers(min_value=1_000_000, max_value=10**12),
        ),
        max_size=25,
    ),
    close=st.sampled_from(["20999", "21000.5", "21001.75"]),
)
def test_random_honest_rounds_pass(rows: list[tuple[str, int]], close: str) -> None:
    bets = [bet(f"b-{i:03d}", side, amount, minute=i % 60) for i, (side, amount) in enumerate(rows)]
    reveal, commit, root = settled_round(bets=bets, close=close)
    assert verify_reveal(reveal=reveal, commit=commit, bets=bets, merkle_root=root).ok
    if bets:
        tampered = [dict(b) for b in bets]
        tampered[-1]["stake_u"] = int(tampered[-1]["stake_u"]) + 1  # type: ignore[call-overload]
        assert "merkle" in failing(reveal, commit, tampered, root)
