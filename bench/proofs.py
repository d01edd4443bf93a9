#!/usr/bin/env python
"""Benchmark: lock a round of N bets through `round_lock`, then time inclusion proofs of its bets.

In its own database (`bench_proofs`, dropped and re-created; the bets are generated as
`bench/settlement.py` generates them, with their stored leaves), it times:

- `round_lock`, and apart from it the Merkle root over the stored leaves (`merkle_root(round_leaves(...))`,
  what the lock computed before it stored the tree) -- the difference is what storing the tree costs;
- `--proofs` proofs of random bets through `rounds.selectors.bet_proof` (what `GET /v1/bets/{id}/proof`
  answers, without HTTP): p50 and p99;
- `--full-proofs` proofs computed the way they were before the tree was stored (every leaf of the round
  read, the proof computed from them), the floor the stored tree is compared with: p50.

    .venv/bin/python bench/proofs.py [--bets 1000000] [--players 200000] [--proofs 200] [--full-proofs 3] [--keep]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

from _common import Figure, psql, write_figures

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
PG = os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432")
DB = "bench_proofs"


def setup_django() -> None:
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings.test"
    os.environ["DATABASE_URL"] = f"{PG}/{DB}"
    import django

    django.setup()


def sample(code: str, count: int) -> list[tuple[Any, str]]:
    """Return `count` random (player, bet_id) pairs of the round."""
    from django.contrib.auth import get_user_model

    from rounds.models import Bet

    ids = list(
        Bet.objects.filter(round__code=code).order_by("?").values_list("player_id", "bet_id")[:count]  # noqa: S311
    )
    users = get_user_model().objects.in_bulk([player for player, _ in ids])
    return [(users[player], str(bet_id)) for player, bet_id in ids]


def percentile(values: list[float], fraction: float) -> float:
    """Return the nearest-rank percentile of `values`."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


def full_proof(*, bet_id: str, code: str) -> list[tuple[str, str]]:
    """Compute a proof as `bet_proof` did before the tree was stored: read every leaf, then hash."""
    from rounds.domain.merkle import merkle_proof
    from rounds.models import Bet, Round
    from rounds.selectors import round_leaves

    round_obj = Round.objects.get(code=code)
    ids = [str(b) for b in Bet.objects.filter(round=round_obj).order_by("bet_id").values_list("bet_id", flat=True)]
    return merkle_proof(round_leaves(round_obj=round_obj), ids.index(bet_id))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bets", type=int, default=1_000_000)
    parser.add_argument("--players", type=int, default=200_000)
    parser.add_argument("--proofs", type=int, default=200, help="proofs timed through bet_proof")
    parser.add_argument("--full-proofs", type=int, default=3, help="proofs timed the old way (every leaf read)")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args()
    psql(f"DROP DATABASE IF EXISTS {DB}")
    psql(f"CREATE DATABASE {DB}")
    setup_django()
    try:
        from settlement import prepare  # bench/settlement.py: the same generated round

        from ops.actors import SystemActor
        from rounds.domain.merkle import merkle_root
        from rounds.models import Round
        from rounds.selectors import bet_proof, round_leaves
        from rounds.services import round_lock

        code = prepare(args.bets, args.players)
        started = time.monotonic()
        root = merkle_root(round_leaves(round_obj=Round.objects.get(code=code)))
        root_s = time.monotonic() - started
        started = time.monotonic()
        round_obj, changed = round_lock(code=code, acting_user=SystemActor("bench"))
        lock_s = time.monotonic() - started
        assert changed and round_obj.merkle_root == root
        print(f"merkle_root(round_leaves(...)) alone: {root_s:.2f} s; round_lock: {lock_s:.2f} s")

        stored: list[float] = []
        for user, bet_id in sample(code, args.proofs):
            started = time.monotonic()
            proof = bet_proof(user=user, bet_id=bet_id)
            stored.append(time.monotonic() - started)
            assert proof.root == root
        full: list[float] = []
        checked = sample(code, args.full_proofs)
        for user, bet_id in checked:
            started = time.monotonic()
            expected = full_proof(bet_id=bet_id, code=code)
            full.append(time.monotonic() - started)
            assert bet_proof(user=user, bet_id=bet_id).proof == expected
        p50, p99 = percentile(stored, 0.50) * 1000, percentile(stored, 0.99) * 1000
        full_p50 = percentile(full, 0.50) * 1000
        print(f"bet_proof over {len(stored)} random bets: p50 {p50:.2f} ms, p99 {p99:.2f} ms")
        print(f"proof computed from every leaf over {len(full)} bets: p50 {full_p50:.0f} ms (same proofs)")
        write_figures(
            "proofs",
            [
                Figure(
                    f"round_lock of {args.bets:,} bets (root, stored tree, leaf positions)",
                    round(lock_s, 2),
                    "s",
                    f"merkle_root over the stored leaves alone {root_s:.2f} s",
                    round(lock_s / root_s, 2),
                ),
                Figure(
                    f"bet_proof p50 in a round of {args.bets:,} bets",
                    round(p50, 2),
                    "ms",
                    f"proof from every leaf {full_p50:.0f} ms",
                    round(p50 / full_p50, 4),
                    "< 10 ms",
                    p50 < 10,
                ),
                Figure(
                    f"bet_proof p99 in a round of {args.bets:,} bets", round(p99, 2), "ms", goal="< 50 ms", met=p99 < 50
                ),
            ],
        )
    finally:
        from django.db import connections

        connections.close_all()
        if not args.keep:
            psql(f"DROP DATABASE IF EXISTS {DB}")


if __name__ == "__main__":
    main()
