"""A locked round's Merkle tree, stored at lock so that an inclusion proof reads O(log n) hashes.

`GET /v1/bets/{id}/proof` used to read every leaf of the round and rebuild the tree on each request
(seconds at a million bets). Now `round_lock` computes the root as before and then calls
`merkle_tree_store`, in the same transaction and under the round's row lock, which writes:

- `MerkleLevel`: one row per level of the tree (log2(n) + 1 rows), the level's 32-byte hashes joined in one
  `bytea`, leaves first. The tree is RFC 6962's, built level by level (`rounds.domain.merkle.merkle_levels`:
  nodes paired left to right, an odd last node carried up), so the sibling of node i on a level is node
  i ^ 1, at byte offset 32 * (i ^ 1). On PostgreSQL the column is stored EXTERNAL (out of line,
  uncompressed; migration 0008), and `substr(hashes, offset, 32)` then fetches only the TOAST chunk
  (about 2 kB) that holds those bytes. About 2n hashes in all: 64 MB for a million bets, in 21 rows.
- `LeafPosition`: each bet's index in leaf order, by one `INSERT ... SELECT row_number() OVER (ORDER BY
  bet_id)` -- the database's uuid order, the one `round_leaves` reads the leaves in (code-point order of the
  lowercase text form).

A proof is then one query (`stored_proof`): the bet's position joined with every level of its round, each
row carrying its sibling's 32 bytes. The proof is the one `merkle_proof` computes from every leaf, step for
step (the tests compare them for every bet of rounds of many sizes), and `rounds.selectors.bet_proof` checks
each proof it serves folds the bet's own leaf up to the round's published root.

Weighed and not chosen: a table of nodes (round, level, index, hash) -- 2n rows and a 2n-entry primary key
written at lock, several times the time and space of 21 rows of blobs, to read the same log2(n) hashes; the
leaf position as a column of `rounds_bet` -- a million-row UPDATE at lock, in the page space kept free for
settlement's HOT payout updates (migration 0002). Rounds locked before the tree was stored have no rows here
and get their proofs computed from every leaf, as before; no backfill.

Measured (`bench/proofs.py`, a million bets, 2 shared CPUs under load): a proof p50 7.6 ms, p99 27 ms
(computed from every leaf: 12 s); `round_lock` 16.7 s, of which the leaves and the root 4.5 s as before, and
the tree and the positions the rest (the positions' million-row insert is the largest part).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from django.db import connection

from rounds.domain.merkle import EMPTY_ROOT, level_path, merkle_levels

from .errors import ProofMismatch
from .models import Bet, LeafPosition, MerkleLevel, Round

HASH_BYTES = 32
logger = logging.getLogger(__name__)

# Inserted in primary-key order, so the index grows at its right edge instead of at a random page per row.
_POSITIONS = (
    f"INSERT INTO {LeafPosition._meta.db_table} (bet_id, position) SELECT id, position FROM"
    f" (SELECT id, row_number() OVER (ORDER BY bet_id) - 1 AS position FROM {Bet._meta.db_table}"
    " WHERE round_id = %s) ranked ORDER BY id"
)
# Per level of the bet's round: the bet's position, the level, its width, and the 32 bytes of the sibling
# of the bet's node on that level (node = position >> level; sibling = node ^ 1, spelt with arithmetic;
# empty past the level's end, where the node is carried up without a sibling).
_SIBLINGS = (
    "SELECT p.position, l.level, l.width,"
    " substr(l.hashes, ((p.position >> l.level) + 1 - 2 * ((p.position >> l.level) & 1)) * 32 + 1, 32)"
    f" FROM {LeafPosition._meta.db_table} p JOIN {MerkleLevel._meta.db_table} l ON l.round_id = %s"
    " WHERE p.bet_id = %s ORDER BY l.level"
)


def proof_refused(detail: str) -> ProofMismatch:
    """Log that a stored tree or a proof disagrees with a round's root, and return the error to raise."""
    logger.error("merkle proof refused: %s", detail)
    return ProofMismatch(detail)


def merkle_tree_store(*, round_obj: Round, leaves: Sequence[bytes], root: str) -> None:
    """Store the tree of ``leaves`` (whose root is ``root``) and each bet's leaf position.

    Call it at lock, in the transaction that holds the round's row lock and publishes ``root``, with the
    leaves that root was computed from. Raises ProofMismatch (and so the lock rolls back) if the levels do
    not end in ``root`` or the round's bets are not the leaves.
    """
    levels = merkle_levels(leaves)
    top = levels[-1].hex() if levels else EMPTY_ROOT
    if top != root:
        raise proof_refused(f"Round {round_obj.code}: the tree built level by level ends in {top}, not {root}.")
    MerkleLevel.objects.bulk_create(
        MerkleLevel(round=round_obj, level=level, width=len(hashes) // HASH_BYTES, hashes=hashes)
        for level, hashes in enumerate(levels)
    )
    with connection.cursor() as cursor:
        cursor.execute(_POSITIONS, [round_obj.pk])
        positions = cursor.rowcount
    if positions != len(leaves):
        raise proof_refused(f"Round {round_obj.code} has {positions} bets but {len(leaves)} leaves.")


def stored_proof(*, round_obj: Round, bet: Bet) -> list[tuple[str, str]] | None:
    """Return the bet's inclusion proof read from the stored tree, or None if its round has none stored.

    One query. Raises ProofMismatch if what is stored is not a whole tree holding the bet; the caller still
    checks the proof against the round's root before serving it.
    """
    with connection.cursor() as cursor:
        cursor.execute(_SIBLINGS, [round_obj.pk, bet.pk])
        rows = cursor.fetchall()
    if not rows:
        return None
    position = rows[0][0]
    widths = [width for _, _, width, _ in rows]
    whole = [level for _, level, _, _ in rows] == list(range(len(rows))) and widths[-1] == 1
    whole = whole and all(above == (below + 1) // 2 for below, above in zip(widths, widths[1:], strict=False))
    if not whole or not 0 <= position < widths[0]:
        raise proof_refused(f"Round {round_obj.code}: the stored tree is not whole, or bet {bet.bet_id} not in it.")
    siblings = [bytes(sibling) for _, _, _, sibling in rows]
    proof = []
    for level, _, side in level_path(widths[0], position):
        if len(siblings[level]) != HASH_BYTES:
            raise proof_refused(f"Round {round_obj.code}: level {level} of the stored tree is cut short.")
        proof.append((siblings[level].hex(), side))
    return proof
