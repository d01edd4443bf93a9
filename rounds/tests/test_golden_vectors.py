"""Known answers for the public verification protocol, not recomputed by the code under test.

- RFC 8785 (JSON Canonicalization Scheme): the examples of sections 3.2.2 and 3.2.3, through the kernel's
  `ops.canonical` and the round protocol's `protocol_json` (which refuses the floats).
- RFC 6962 (Certificate Transparency): the empty tree, the Merkle tree hashes of the reference leaves for
  trees of 1 to 8 leaves and their audit paths, as published with Certificate Transparency's test data and
  recomputed by a reference implementation written here from the RFC's section 2.1 (not by our code).
  Our tree is RFC 6962's: leaf prefix 0x00, node prefix 0x01, split at the largest power of two below n.
- One fixed round: its commit, bet leaves, Merkle root and reveal, written down here and in
  `docs/verify-a-round.md`, and recomputed below with nothing but `hashlib` and `json`.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest
import rfc8785

from ops.canonical import canonical_json
from rounds.domain.commitment import commit_params, protocol_json, round_commit
from rounds.domain.merkle import bet_leaves, merkle_proof, merkle_root, verify_proof
from rounds.domain.pool import Result, Side, settle_pool
from rounds.domain.reveal import build_reveal, reveal_header, verify_reveal

# --- RFC 8785 ---------------------------------------------------------------------------------

RFC8785_322_STRING = '"\u20ac$\\u000f\\nA\'B\\"\\\\\\\\\\"/"'
RFC8785_322_OUTPUT = (
    '{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],'
    '"string":' + RFC8785_322_STRING + "}"
)
RFC8785_323_OUTPUT = (
    '{"\\r":"Carriage Return","1":"One","\u0080":"Control","\u00f6":"Latin Small Letter O With Diaeresis",'
    '"\u20ac":"Euro Sign","\U0001f600":"Emoji: Grinning Face","\ufb33":"Hebrew Letter Dalet With Dagesh"}'
)


def test_rfc8785_section_3_2_2_example() -> None:
    value: dict[str, object] = {
        "numbers": [333333333.33333329, 1e30, 4.50, 2e-3, 0.000000000000000000000000001],
        "string": "\u20ac$\u000f\u000aA'\u0042\u0022\u005c\\\"/",
        "literals": [None, True, False],
    }
    assert rfc8785.dumps(value).decode("utf-8") == RFC8785_322_OUTPUT  # type: ignore[arg-type]
    assert canonical_json(value, floats=True).decode("utf-8") == RFC8785_322_OUTPUT
    # The project's canonical form refuses floats (money and prices are integers or decimal strings)...
    with pytest.raises(Exception, match="float"):
        protocol_json(value)
    # ...and gives the RFC's bytes for the rest of the example.
    rest = {"literals": value["literals"], "string": value["string"]}
    assert protocol_json(rest).decode("utf-8") == '{"literals":[null,true,false],"string":' + RFC8785_322_STRING + "}"


def test_rfc8785_section_3_2_3_property_sorting() -> None:
    value = {
        "\u20ac": "Euro Sign",
        "\r": "Carriage Return",
        "\ufb33": "Hebrew Letter Dalet With Dagesh",
        "1": "One",
        "\U0001f600": "Emoji: Grinning Face",
        "\u0080": "Control",
        "\u00f6": "Latin Small Letter O With Diaeresis",
    }
    assert protocol_json(value).decode("utf-8") == RFC8785_323_OUTPUT


# --- RFC 6962 ---------------------------------------------------------------------------------

CT_LEAVES = ["", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"]
CT_ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
CT_PATH_LEAF0_TREE8 = [
    "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
    "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
]


EMPTY_TREE_ROOT = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"  # SHA-256 of nothing


def ct_leaf(data_hex: str) -> bytes:
    return hashlib.sha256(b"\x00" + bytes.fromhex(data_hex)).digest()


def rfc6962_mth(entries: list[bytes]) -> bytes:
    """MTH(D[n]) of RFC 6962 section 2.1, over the raw entries (not leaf hashes), written from the text."""
    n = len(entries)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return hashlib.sha256(b"\x00" + entries[0]).digest()
    k = 1
    while k * 2 < n:  # the largest power of two smaller than n
        k *= 2
    return hashlib.sha256(b"\x01" + rfc6962_mth(entries[:k]) + rfc6962_mth(entries[k:])).digest()


def rfc6962_path(m: int, entries: list[bytes]) -> list[bytes]:
    """PATH(m, D[n]) of RFC 6962 section 2.1.1: the audit path of entry m, leaf level first."""
    n = len(entries)
    if n == 1:
        return []
    k = 1
    while k * 2 < n:
        k *= 2
    if m < k:
        return [*rfc6962_path(m, entries[:k]), rfc6962_mth(entries[k:])]
    return [*rfc6962_path(m - k, entries[k:]), rfc6962_mth(entries[:k])]


def test_rfc6962_reference_implementation_gives_the_published_roots() -> None:
    entries = [bytes.fromhex(d) for d in CT_LEAVES]
    assert rfc6962_mth([]).hex() == EMPTY_TREE_ROOT
    assert [rfc6962_mth(entries[:size]).hex() for size in range(1, 9)] == CT_ROOTS
    assert [sibling.hex() for sibling in rfc6962_path(0, entries)] == CT_PATH_LEAF0_TREE8


def test_rfc6962_empty_tree() -> None:
    assert merkle_root([]) == EMPTY_TREE_ROOT


@pytest.mark.parametrize("size", range(1, 9))
def test_rfc6962_audit_paths_match_the_reference(size: int) -> None:
    entries = [bytes.fromhex(d) for d in CT_LEAVES[:size]]
    leaves = [ct_leaf(d) for d in CT_LEAVES[:size]]
    for index in range(size):
        assert [bytes.fromhex(sibling) for sibling, _ in merkle_proof(leaves, index)] == rfc6962_path(index, entries)


@pytest.mark.parametrize("size", range(1, 9))
def test_rfc6962_tree_hashes(size: int) -> None:
    leaves = [ct_leaf(d) for d in CT_LEAVES[:size]]
    assert merkle_root(leaves) == CT_ROOTS[size - 1]
    for index in range(size):  # every audit path folds back to the published root
        assert verify_proof(leaf=leaves[index], proof=merkle_proof(leaves, index), root=CT_ROOTS[size - 1])


def test_rfc6962_audit_path() -> None:
    leaves = [ct_leaf(d) for d in CT_LEAVES]
    assert [sibling for sibling, _ in merkle_proof(leaves, 0)] == CT_PATH_LEAF0_TREE8
    assert not verify_proof(leaf=leaves[1], proof=merkle_proof(leaves, 0), root=CT_ROOTS[7])


# --- A fixed round ------------------------------------------------------------------------------

SALT = "00" * 31 + "2a"
COMMIT = "1525fa6848579e873cad142a8e9fe3966cd7b1afca19689498e50a8e51d7a9cb"
PARAMS_JSON = (
    '{"close_utc":"2025-09-08T20:00:00Z","code":"20250908","fee_bps":100,"instrument":"NASDAQ-COMPOSITE",'
    '"lock_utc":"2025-09-08T19:59:59Z","min_stake_u":1000000,"open_utc":"2025-09-08T13:30:00Z",'
    '"previous_commit":null,"reference_close":"21700.5","rules_version":"updown-parimutuel/1",'
    '"salt":"000000000000000000000000000000000000000000000000000000000000002a",'
    '"settle_after_utc":"2025-09-08T20:05:00Z"}'
)
BET_ROWS: list[tuple[int, str, int]] = [(1, "UP", 2_000_000), (2, "DOWN", 3_000_000), (3, "UP", 1_000_000)]
BETS: list[dict[str, object]] = [
    {
        "bet_id": f"00000000-0000-4000-8000-00000000000{n}",
        "player_id": f"10000000-0000-4000-8000-00000000000{n}",
        "side": side,
        "stake_u": stake,
        "placed_at": f"2025-09-08T1{3 + n}:00:00Z",
    }
    for n, side, stake in BET_ROWS
]
STAKES = [(f"00000000-0000-4000-8000-00000000000{n}", Side(side), stake) for n, side, stake in BET_ROWS]
LEAVES = [
    "6fd16c119315599cb1a30fa8461a965f87feb504a17632c92c66b890bfb0fd49",
    "7aa52583fc39ae648e2e7b9873976c33c684521c007e452abebf113fcbead096",
    "2996b50468ed67643681125a2d8f1ca157f53c65a01ec9d6440b81af261b11d0",
]
ROOT = "05d2739cbf9423f9cd83dc864413d6d78e3abbc2b64f59ea8a76d57bd1f8f526"
PAYOUTS = {
    "00000000-0000-4000-8000-000000000001": 3_960_000,
    "00000000-0000-4000-8000-000000000002": 0,
    "00000000-0000-4000-8000-000000000003": 1_980_000,
}
CLOSE = "21750.25"
EVIDENCE = [{"source": "src-a", "price": CLOSE}, {"source": "src-b", "price": CLOSE}]
# The reveal with the payouts merged in (as the verifier sees it), in canonical JSON.
REVEAL_JSON = (
    '{"breakage_u":0,"close":"21750.25","evidence":[{"price":"21750.25","source":"src-a"},'
    '{"price":"21750.25","source":"src-b"}],"fee_u":60000,"params":{"close_utc":"2025-09-08T20:00:00Z",'
    '"code":"20250908","fee_bps":100,"instrument":"NASDAQ-COMPOSITE","lock_utc":"2025-09-08T19:59:59Z",'
    '"min_stake_u":1000000,"open_utc":"2025-09-08T13:30:00Z","previous_commit":null,'
    '"reference_close":"21700.5","rules_version":"updown-parimutuel/1","settle_after_utc":"2025-09-08T20:05:00Z"},'
    '"payouts_u":{"00000000-0000-4000-8000-000000000001":3960000,"00000000-0000-4000-8000-000000000002":0,'
    '"00000000-0000-4000-8000-000000000003":1980000},"result":"UP",'
    '"salt":"000000000000000000000000000000000000000000000000000000000000002a","void_reason":null}'
)


def fixed_params() -> dict[str, object]:
    return commit_params(
        code="20250908",
        instrument="NASDAQ-COMPOSITE",
        reference_close=Decimal("21700.5"),
        open_utc=datetime(2025, 9, 8, 13, 30, tzinfo=UTC),
        lock_utc=datetime(2025, 9, 8, 19, 59, 59, tzinfo=UTC),
        close_utc=datetime(2025, 9, 8, 20, 0, tzinfo=UTC),
        settle_after_utc=datetime(2025, 9, 8, 20, 5, tzinfo=UTC),
        fee_bps=100,
        min_stake_u=1_000_000,
        previous_commit=None,
        salt=SALT,
    )


def plain_jcs(value: object) -> bytes:
    """RFC 8785 for ASCII keys, strings and integers only: sorted keys, no spaces, UTF-8."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def test_the_fixed_round_by_hand() -> None:
    assert hashlib.sha256(PARAMS_JSON.encode()).hexdigest() == COMMIT
    leaves = [hashlib.sha256(b"\x00" + plain_jcs(bet)).digest() for bet in BETS]
    assert [leaf.hex() for leaf in leaves] == LEAVES
    node = lambda left, right: hashlib.sha256(b"\x01" + left + right).digest()  # noqa: E731
    assert node(node(leaves[0], leaves[1]), leaves[2]).hex() == ROOT  # 3 leaves split 2 + 1


def test_the_fixed_reveal_by_hand() -> None:
    reveal = json.loads(REVEAL_JSON)
    assert plain_jcs(reveal).decode() == REVEAL_JSON  # written down in canonical form
    params = json.loads(PARAMS_JSON)
    assert reveal["params"] == {key: value for key, value in params.items() if key != "salt"}
    assert hashlib.sha256(plain_jcs({**reveal["params"], "salt": reveal["salt"]})).hexdigest() == COMMIT
    assert Decimal(reveal["close"]) > Decimal(params["reference_close"]) and reveal["result"] == "UP"
    total = sum(stake for _, _, stake in BET_ROWS)
    winning = sum(stake for _, side, stake in BET_ROWS if side == "UP")
    fee = min(total * params["fee_bps"] // 10_000, total - winning)
    payouts = {
        f"00000000-0000-4000-8000-00000000000{n}": stake * (total - fee) // winning if side == "UP" else 0
        for n, side, stake in BET_ROWS
    }
    assert (reveal["fee_u"], reveal["payouts_u"], reveal["breakage_u"]) == (
        fee,
        payouts,
        total - fee - sum(payouts.values()),
    )
    assert payouts == PAYOUTS


def test_the_fixed_round_by_the_implementation() -> None:
    params = fixed_params()
    assert round_commit(params=params) == COMMIT
    assert [leaf.hex() for leaf in bet_leaves(bets=BETS)] == LEAVES
    assert merkle_root(bet_leaves(bets=BETS)) == ROOT
    assert protocol_json(params).decode() == PARAMS_JSON
    settlement = settle_pool(stakes=STAKES, result=Result.UP, fee_bps=100)
    reveal = build_reveal(params=params, close=Decimal(CLOSE), evidence=EVIDENCE, settlement=settlement)
    assert (reveal["result"], reveal["fee_u"], reveal["breakage_u"], reveal["payouts_u"]) == ("UP", 60_000, 0, PAYOUTS)
    assert protocol_json(reveal).decode() == REVEAL_JSON
    # What settlement stores on the round: the same reveal without the payouts (those live on the bets).
    header = reveal_header(
        params=params,
        close=Decimal(CLOSE),
        evidence=EVIDENCE,
        result=Result.UP,
        void_reason=None,
        fee_u=60_000,
        breakage_u=0,
    )
    assert {**header, "payouts_u": PAYOUTS} == reveal
    assert verify_reveal(reveal=reveal, commit=COMMIT, bets=BETS, merkle_root=ROOT).ok
    tampered = {**reveal, "payouts_u": {**PAYOUTS, "00000000-0000-4000-8000-000000000002": 1}}
    assert not verify_reveal(reveal=tampered, commit=COMMIT, bets=BETS, merkle_root=ROOT).ok
