"""The Merkle tree of a round's bets, published at lock, as RFC 6962 (Certificate Transparency) builds it.

    leaf hash  = SHA-256(0x00 || canonical_json({bet_id, player_id, side, stake_u, placed_at}))
    node hash  = SHA-256(0x01 || left || right), splitting n leaves at the largest power of two < n;
    empty root = SHA-256(b"") (``EMPTY_ROOT``).

The same tree is also built level by level (``merkle_levels``, ``level_path``) so that it can be stored at
lock and a proof read from it in O(log n) (``rounds/proofs.py``).

Leaves are ordered by ``bet_id`` ascending in Unicode code-point order (== UTF-8 byte order; NOT a
database collation -- sort in Python or use ``COLLATE "C"``); bet ids must be unique.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping, Sequence

from rounds.domain.commitment import is_exact_int, protocol_json, text_of
from rounds.domain.errors import InvalidBetRecord, InvalidMerkleInput, UnknownBet
from rounds.domain.pool import Side

LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"
EMPTY_ROOT = hashlib.sha256(b"").hexdigest()
BET_FIELDS = ("bet_id", "placed_at", "player_id", "side", "stake_u")

__all__ = [
    "BET_FIELDS",
    "EMPTY_ROOT",
    "LEAF_PREFIX",
    "NODE_PREFIX",
    "bet_leaf",
    "bet_leaves",
    "level_path",
    "merkle_levels",
    "merkle_proof",
    "merkle_root",
    "proof_for_bet",
    "sort_bets",
    "verify_proof",
]


# ---------------------------------------------------------------- leaves


def bet_leaf(*, bet_id: str, player_id: str, side: str, stake_u: int, placed_at: str) -> bytes:
    """Return the 32-byte leaf hash SHA-256(0x00 || canonical JSON of the bet)."""
    record: dict[str, object] = {
        "bet_id": bet_id,
        "player_id": player_id,
        "side": side,
        "stake_u": stake_u,
        "placed_at": placed_at,
    }
    return _record_leaf(record)


def _record_leaf(bet: Mapping[str, object]) -> bytes:
    """Validate one bet record and return its leaf hash."""
    _validate_bet(bet)
    return hashlib.sha256(LEAF_PREFIX + protocol_json(bet)).digest()


def _validate_bet(bet: Mapping[str, object]) -> None:
    """Raise InvalidBetRecord unless ``bet`` has exactly BET_FIELDS with valid types."""
    if not isinstance(bet, Mapping) or sorted(bet) != list(BET_FIELDS):
        raise InvalidBetRecord(f"bet must have exactly the fields {BET_FIELDS}")
    texts = (bet["bet_id"], bet["player_id"], bet["placed_at"])
    if not all(isinstance(text, str) and text for text in texts):
        raise InvalidBetRecord("bet_id, player_id and placed_at must be non-empty strings")
    if not isinstance(bet["side"], str) or bet["side"] not in (
        Side.UP.value,
        Side.DOWN.value,
    ):
        raise InvalidBetRecord(f"side must be 'UP' or 'DOWN', got {bet['side']!r}")
    stake = bet["stake_u"]
    if not is_exact_int(stake) or stake <= 0:
        raise InvalidBetRecord(f"stake_u must be a positive int, got {stake!r}")


def sort_bets(*, bets: Sequence[Mapping[str, object]]) -> list[Mapping[str, object]]:
    """Return bets in leaf order (bet_id ascending by code point); reject duplicates."""
    for bet in bets:
        _validate_bet(bet)
    ordered = sorted(bets, key=lambda bet: text_of(bet["bet_id"], name="bet_id"))
    ids = [bet["bet_id"] for bet in ordered]
    if len(set(ids)) != len(ids):
        raise InvalidBetRecord("duplicate bet_id")
    return ordered


def bet_leaves(*, bets: Sequence[Mapping[str, object]]) -> list[bytes]:
    """Return the leaf hashes of ``bets`` in canonical leaf order."""
    return [_record_leaf(bet) for bet in sort_bets(bets=bets)]


# ---------------------------------------------------------------- tree


def _node(left: bytes, right: bytes) -> bytes:
    """Return the internal node hash SHA-256(0x01 || left || right)."""
    return hashlib.sha256(NODE_PREFIX + left + right).digest()


def _split(size: int) -> int:
    """Return the largest power of two strictly less than ``size`` (size >= 2)."""
    return 1 << ((size - 1).bit_length() - 1)


def _check_leaves(leaves: Sequence[bytes]) -> None:
    """Raise InvalidMerkleInput unless every leaf is a 32-byte ``bytes``."""
    if not all(isinstance(leaf, bytes) and len(leaf) == 32 for leaf in leaves):
        raise InvalidMerkleInput("leaves must be 32-byte leaf hashes (see bet_leaf)")


def _subtree(leaves: Sequence[bytes], lo: int, hi: int) -> bytes:
    """Return the RFC 6962 hash of ``leaves[lo:hi]`` (non-empty)."""
    if hi - lo == 1:
        return leaves[lo]
    mid = lo + _split(hi - lo)
    return _node(_subtree(leaves, lo, mid), _subtree(leaves, mid, hi))


def merkle_root(leaves: Sequence[bytes]) -> str:
    """Return the RFC 6962 Merkle root (hex) of leaf hashes, in the order given (EMPTY_ROOT if none)."""
    _check_leaves(leaves)
    return _subtree(leaves, 0, len(leaves)).hex() if leaves else EMPTY_ROOT


# ---------------------------------------------------------------- inclusion proofs


def _path(leaves: Sequence[bytes], index: int, lo: int, hi: int) -> list[tuple[str, str]]:
    """Return the audit path of ``index`` in ``leaves[lo:hi]``, leaf level first."""
    if hi - lo == 1:
        return []
    mid = lo + _split(hi - lo)
    if index < mid:
        return [*_path(leaves, index, lo, mid), (_subtree(leaves, mid, hi).hex(), "R")]
    return [*_path(leaves, index, mid, hi), (_subtree(leaves, lo, mid).hex(), "L")]


def merkle_proof(leaves: Sequence[bytes], index: int) -> list[tuple[str, str]]:
    """Return ``[(sibling_hex, 'L'|'R'), ...]`` from leaf ``index`` up to the root."""
    _check_leaves(leaves)
    if not is_exact_int(index) or not 0 <= index < len(leaves):
        raise InvalidMerkleInput(f"index {index!r} out of range for {len(leaves)} leaves")
    return _path(leaves, index, 0, len(leaves))


def _fold(leaf: bytes, proof: Sequence[tuple[str, str]]) -> bytes:
    """Hash ``leaf`` up through ``proof`` and return the resulting root bytes."""
    digest = leaf
    for sibling_hex, position in proof:
        sibling = bytes.fromhex(sibling_hex)
        if len(sibling) != 32 or position not in ("L", "R"):
            raise ValueError("bad proof step")
        digest = _node(sibling, digest) if position == "L" else _node(digest, sibling)
    return digest


def verify_proof(*, leaf: bytes, proof: Sequence[tuple[str, str]], root: str) -> bool:
    """Return True if ``proof`` links leaf hash ``leaf`` to hex ``root``; no raise."""
    try:
        if not isinstance(leaf, bytes) or len(leaf) != 32:
            return False
        return hmac.compare_digest(_fold(leaf, proof).hex(), root.lower())
    except (TypeError, ValueError, AttributeError):
        return False


def proof_for_bet(*, bets: Sequence[Mapping[str, object]], bet_id: str) -> list[tuple[str, str]]:
    """Return the inclusion proof of ``bet_id`` in the canonical tree of ``bets`` (UnknownBet if absent)."""
    ids = [bet["bet_id"] for bet in sort_bets(bets=bets)]
    if bet_id not in ids:
        raise UnknownBet(f"bet_id {bet_id!r} not among bets")
    return merkle_proof(bet_leaves(bets=bets), ids.index(bet_id))


# ---------------------------------------------------------------- the same tree, level by level
#
# RFC 6962's tree is the "left-balanced" tree built bottom-up: level 0 is the leaves; level k+1 hashes the
# nodes of level k in pairs, left to right, and carries an odd last node up unchanged. Why: for n leaves
# and k the largest power of two below n, the first k leaves pair up into a perfect subtree whose root is
# node 0 of level log2(k); the other n - k leaves start at position k, which stays even on every level
# below log2(k), so they pair among themselves exactly as the tree of those n - k leaves does (by
# induction), its root carried up until it meets the left subtree's root as the last pair. The tests
# check this against ``merkle_root`` and ``merkle_proof`` for every n from 1 to 70 and every index.


def merkle_levels(leaves: Sequence[bytes]) -> list[bytes]:
    """Return every level of the tree, leaves first, each as its 32-byte hashes joined left to right.

    The last level holds the root alone; no leaves, no levels.
    """
    _check_leaves(leaves)
    if not leaves:
        return []
    levels = [b"".join(leaves)]
    while len(levels[-1]) > 32:
        below = levels[-1]
        paired = len(below) // 64 * 64
        level = b"".join(
            hashlib.sha256(NODE_PREFIX + below[start : start + 64]).digest() for start in range(0, paired, 64)
        )
        levels.append(level + below[paired:])  # an odd last node goes up unchanged
    return levels


def level_path(size: int, index: int) -> list[tuple[int, int, str]]:
    """Return ``[(level, node, 'L'|'R'), ...]``: where each sibling of ``merkle_proof`` sits in ``merkle_levels``.

    ``node`` indexes the level's hashes; the steps come leaf level first, as in ``merkle_proof``.
    """
    if not is_exact_int(size) or not is_exact_int(index) or not 0 <= index < size:
        raise InvalidMerkleInput(f"index {index!r} out of range for {size!r} leaves")
    steps: list[tuple[int, int, str]] = []
    level, width = 0, size
    while width > 1:
        sibling = index ^ 1
        if sibling < width:  # else this node is the level's odd last one: carried up, no step
            steps.append((level, sibling, "L" if index & 1 else "R"))
        index, width, level = index // 2, (width + 1) // 2, level + 1
    return steps
