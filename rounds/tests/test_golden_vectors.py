"""Known answers for the public verification protocol, not recomputed by the code under test.

- RFC 8785 (JSON Canonicalization Scheme): the examples of sections 3.2.2 and 3.2.3.
- RFC 6962 (Certificate Transparency): the Merkle tree hashes of the reference leaves for trees of 1 to 8
  leaves, and an audit path, as published with Certificate Transparency's test data.
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

from rounds.domain.commitment import commit_params, protocol_json, round_commit
from rounds.domain.merkle import bet_leaves, merkle_proof, merkle_root, verify_proof
from rounds.domain.pool import Result, Side, settle_pool
from rounds.domain.reveal import build_reveal, verify_reveal

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
    value = {
        "numbers": [333333333.33333329, 1e30, 4.50, 2e-3, 0.000000000000000000000000001],
        "string": "\u20ac$\u000f\u000aA'\u0042\u0022\u005c\\\"/",
        "literals": [None, True, False],
    }
    assert rfc8785.dumps(value).decode("utf-8") == RFC8785_322_OUTPUT
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


def ct_leaf(data_hex: str) -> bytes:
    return hashlib.sha256(b"\x00" + bytes.fromhex(data_hex)).digest()


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
BETS = [
    {
        "bet_id": f"00000000-0000-4000-8000-00000000000{n}",
        "player_id": f"10000000-0000-4000-8000-00000000000{n}",
        "side": side,
        "stake_u": stake,
        "placed_at": f"2025-09-08T1{3 + n}:00:00Z",
    }
    for n, side, stake in ((1, "UP", 2_000_000), (2, "DOWN", 3_000_000), (3, "UP", 1_000_000))
]
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
    params = fixed_params()
    assert hashlib.sha256(plain_jcs(params)).hexdigest() == COMMIT
    leaves = [hashlib.sha256(b"\x00" + plain_jcs(bet)).digest() for bet in BETS]
    assert [leaf.hex() for leaf in leaves] == LEAVES
    node = lambda left, right: hashlib.sha256(b"\x01" + left + right).digest()  # noqa: E731
    assert node(node(leaves[0], leaves[1]), leaves[2]).hex() == ROOT  # 3 leaves split 2 + 1


def test_the_fixed_round_by_the_implementation() -> None:
    params = fixed_params()
    assert round_commit(params=params) == COMMIT
    assert [leaf.hex() for leaf in bet_leaves(bets=BETS)] == LEAVES
    assert merkle_root(bet_leaves(bets=BETS)) == ROOT
    settlement = settle_pool(
        stakes=[(b["bet_id"], Side(b["side"]), b["stake_u"]) for b in BETS], result=Result.UP, fee_bps=100
    )
    evidence = [{"source": "src-a", "price": "21750.25"}, {"source": "src-b", "price": "21750.25"}]
    reveal = build_reveal(params=params, close=Decimal("21750.25"), evidence=evidence, settlement=settlement)
    assert (reveal["result"], reveal["fee_u"], reveal["breakage_u"], reveal["payouts_u"]) == ("UP", 60_000, 0, PAYOUTS)
    assert verify_reveal(reveal=reveal, commit=COMMIT, bets=BETS, merkle_root=ROOT).ok
    tampered = {**reveal, "payouts_u": {**PAYOUTS, "00000000-0000-4000-8000-000000000002": 1}}
    assert not verify_reveal(reveal=tampered, commit=COMMIT, bets=BETS, merkle_root=ROOT).ok
