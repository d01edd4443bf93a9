#!/usr/bin/env python
"""Benchmark: settle one round of N bets with the real set-based SQL, beside a raw-insert floor.

In its own database (`bench_settlement`, dropped and re-created; Django test settings, real
migrations), it generates players, funded accounts and bets with set-based SQL, then times
`rounds.settlement.settlement_apply` (what a forced UP runs once approved: the same transaction as AUTO, without the
oracle), and prints the time and its ratio to a floor measured in the same run: one
`INSERT ... SELECT generate_series` writing the same number of entry rows into a scratch table shaped
like `ledger_entry` (`LIKE ... INCLUDING ALL`). Goals: under 10 s for a million bets, ratio <= 3.

    .venv/bin/python bench/settlement.py [--bets 1000000] [--players 200000] [--check] [--keep]

`BENCH_DB` names the database when several checkouts share one server (default `bench_settlement`).

The product allows one bet per player per round; to settle a million bets from 200,000 players this
benchmark drops that unique constraint in its own database (the settlement SQL aggregates per account
and does not rely on it). The round is locked by SQL (status and a placeholder root) unless
`--lock-with-service` is given: `round_lock` computes the Merkle root in Python and is timed apart.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from _common import Figure, write_figures

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
PG = os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432")
DB = os.environ.get("BENCH_DB", "bench_settlement")  # another name when several checkouts share a server


def psql(sql: str) -> None:
    subprocess.run(["psql", "-q", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-c", sql], check=True)


def setup_django() -> None:
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings.test"
    os.environ["DATABASE_URL"] = f"{PG}/{DB}"
    import django

    django.setup()


def prepare(bets: int, players: int) -> str:
    """Create the database, migrate, open a round, and generate players, accounts and bets in SQL."""
    from django.core.management import call_command
    from django.db import connection, transaction

    from ops.actors import SystemActor
    from rounds import clock
    from rounds.domain.calendar import session_times
    from rounds.services import round_open_at_reference

    call_command("migrate", verbosity=0)
    code = "20250908"
    lock = session_times(day=__import__("datetime").date(2025, 9, 8)).lock_utc
    clock.now = lambda: lock - timedelta(hours=2)  # type: ignore[assignment]
    round_obj = round_open_at_reference(
        code=code, reference=Decimal(100), source="bench", acting_user=SystemActor("bench"), reason="bench"
    )
    started = time.monotonic()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("ALTER TABLE rounds_bet DROP CONSTRAINT rounds_bet_one_per_player_per_round")
        cursor.execute(
            "INSERT INTO accounts_user (password, is_superuser, public_id, email, display_name, is_staff,"
            " is_active, date_joined) SELECT '!', false, gen_random_uuid(), 'bench' || i || '@example.com', '',"
            " false, true, now() FROM generate_series(1, %s) i",
            [players],
        )
        cursor.execute(
            "INSERT INTO ledger_account (name, currency, kind, owner_id, balance_u, allow_negative)"
            " SELECT 'user:' || u.public_id || ':available', 'USDC', 'user_available', u.id, 0, false"
            " FROM accounts_user u WHERE u.email LIKE 'bench%%'"
        )
        cursor.execute(
            "CREATE TEMP TABLE bench_players AS SELECT row_number() OVER (ORDER BY a.id) AS n, a.owner_id, a.id"
            " AS account_id FROM ledger_account a WHERE a.kind = 'user_available'"
        )
        cursor.execute("CREATE INDEX ON bench_players (n)")
        # Each bet's Merkle leaf, SHA-256(0x00 || RFC 8785 JSON of its public record), as bet_place
        # stores it; the JSON is spelled out here (uuids, ISO instants and UP/DOWN need no escaping).
        cursor.execute(
            "INSERT INTO rounds_bet (round_id, player_id, account_id, bet_id, side, stake_u, placed_at, flow_id, leaf)"
            " SELECT %s, b.owner_id, b.account_id, b.bet_id, b.side, b.stake_u, b.placed_at,"
            "  'bet-' || replace(gen_random_uuid()::text, '-', ''),"
            '  sha256(\'\\x00\'::bytea || convert_to(\'{"bet_id":"\' || b.bet_id || \'","placed_at":"\''
            "  || to_char(b.placed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS')"
            "  || CASE WHEN to_char(b.placed_at, 'US') = '000000' THEN '' ELSE '.' || to_char(b.placed_at, 'US') END"
            '  || \'Z","player_id":"\' || u.public_id || \'","side":"\' || b.side'
            "  || '\",\"stake_u\":' || b.stake_u || '}', 'UTF8'))"
            " FROM (SELECT p.owner_id, p.account_id, gen_random_uuid() AS bet_id,"
            "  CASE WHEN random() < 0.5 THEN 'UP' ELSE 'DOWN' END AS side,"
            "  1000000 + (random() * 99000000)::bigint AS stake_u,"
            "  %s - interval '3 hours' + (i || ' milliseconds')::interval AS placed_at"
            "  FROM generate_series(1, %s) i JOIN bench_players p ON p.n = 1 + (i %% %s)) b"
            " JOIN accounts_user u ON u.id = b.owner_id",
            [round_obj.pk, lock, bets, players],
        )
        # As in production, each player's account row was updated when they deposited and when they
        # staked (both set-based here, netting to zero, so balances still equal their entries).
        cursor.execute(
            "UPDATE ledger_account a SET balance_u = a.balance_u + s.staked FROM (SELECT account_id,"
            " SUM(stake_u) AS staked FROM rounds_bet WHERE round_id = %s GROUP BY account_id) s"
            " WHERE a.id = s.account_id",
            [round_obj.pk],
        )
        cursor.execute(
            "UPDATE ledger_account a SET balance_u = a.balance_u - s.staked FROM (SELECT account_id,"
            " SUM(stake_u) AS staked FROM rounds_bet WHERE round_id = %s GROUP BY account_id) s"
            " WHERE a.id = s.account_id",
            [round_obj.pk],
        )
        cursor.execute(
            "UPDATE rounds_round r SET up_pool_u = s.up, down_pool_u = s.down, up_bets = s.nu, down_bets = s.nd"
            " FROM (SELECT COALESCE(SUM(stake_u) FILTER (WHERE side='UP'), 0) up,"
            "  COALESCE(SUM(stake_u) FILTER (WHERE side='DOWN'), 0) down,"
            "  COUNT(*) FILTER (WHERE side='UP') nu, COUNT(*) FILTER (WHERE side='DOWN') nd"
            "  FROM rounds_bet WHERE round_id = %s) s WHERE r.id = %s",
            [round_obj.pk, round_obj.pk],
        )
        # The stakes arrive in the pool through one journal from a clearing account (so balances
        # still equal their entries and every invariant holds before and after settlement).
        cursor.execute(
            "INSERT INTO ledger_account (name, currency, kind, balance_u, allow_negative)"
            " VALUES ('psp:bench', 'USDC', 'external', 0, true)"
        )
        cursor.execute(
            "INSERT INTO ledger_journal (type, reference, fingerprint, metadata, actor_label)"
            " VALUES ('bet', 'bench:stakes', 'bench', '{}', 'bench') RETURNING id"
        )
        (journal_id,) = cursor.fetchone()
        cursor.execute("SELECT SUM(stake_u) FROM rounds_bet WHERE round_id = %s", [round_obj.pk])
        (total,) = cursor.fetchone()
        cursor.execute(
            "INSERT INTO ledger_entry (journal_id, account_id, currency, amount_u) VALUES"
            " (%s, (SELECT id FROM ledger_account WHERE name = 'psp:bench'), 'USDC', %s), (%s, %s, 'USDC', %s)",
            [journal_id, -total, journal_id, round_obj.pool_account_id, total],
        )
        cursor.execute(
            "UPDATE ledger_account SET balance_u = balance_u + CASE WHEN name = 'psp:bench' THEN %s::bigint"
            " ELSE %s::bigint END WHERE name = 'psp:bench' OR id = %s",
            [-total, total, round_obj.pool_account_id],
        )
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE rounds_bet")
        cursor.execute("VACUUM ANALYZE ledger_account")
        cursor.execute("ANALYZE ledger_entry")
    print(f"generated {bets:,} bets from {players:,} players in {time.monotonic() - started:.1f} s")
    return code


def lock(code: str, *, with_service: bool) -> None:
    """Lock the round: through `round_lock` (Merkle root in Python, timed) or by SQL (placeholder root)."""
    from django.db import connection

    from ops.actors import SystemActor
    from rounds.services import round_lock

    if with_service:
        started = time.monotonic()
        round_obj, _ = round_lock(code=code, acting_user=SystemActor("bench"))
        print(f"round_lock (Merkle root, stored tree, leaf positions): {time.monotonic() - started:.2f} s")
        return
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE rounds_round SET status = 'LOCKED', merkle_root = repeat('0', 64), locked_at = lock_at"
            " WHERE code = %s",
            [code],
        )


def settle(code: str) -> tuple[float, int]:
    """Settle the round and return (seconds, entry rows written)."""
    from django.db import connection

    from ops.actors import SystemActor
    from rounds.domain.pool import Result
    from rounds.models import Round
    from rounds.settlement import settlement_apply

    timings: list[tuple[float, str]] = []

    def timed(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        begun = time.monotonic()
        try:
            return execute(sql, params, many, context)
        finally:
            timings.append((time.monotonic() - begun, " ".join(sql.split())[:110]))

    started = time.monotonic()
    with connection.execute_wrapper(timed):
        # The settlement engine itself (what a forced UP applies after its two operators), timed alone.
        round_obj, changed = settlement_apply(
            round_id=Round.objects.get(code=code).pk,
            result=Result.UP,
            void_reason=None,
            close=None,
            evidence=[],
            forced={"result": "UP", "operator": "bench"},
            acting_user=SystemActor("bench"),
            reason="benchmark",
        )
    seconds = time.monotonic() - started
    for took, sql in timings:
        if took >= 0.2:
            print(f"  {took:6.2f} s  {sql}")
    assert changed
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT COUNT(*) FROM ledger_entry e JOIN ledger_journal j ON j.id = e.journal_id WHERE j.reference = %s",
            [f"round:{code}:settlement"],
        )
        (rows,) = cursor.fetchone()
    in_transaction = round_obj.settlement_duration_s or 0.0
    print(
        f"  {in_transaction:6.2f} s  inside the transaction; {seconds - in_transaction:.2f} s commit (deferred FK"
        " checks and the ledger's zero-sum trigger) and the rest"
    )
    print(
        f"settled round {code}: {round_obj.result}, total {round_obj.total_pool_u:,} u, fee {round_obj.fee_u:,},"
        f" breakage {round_obj.breakage_u:,}, {round_obj.winners:,} winning bets, {rows:,} entries"
    )
    return seconds, int(rows)


def floor(rows: int, players: int, *, foreign_keys: bool) -> float:
    """Time one INSERT ... SELECT generate_series of `rows` rows into a table shaped like ledger_entry.

    The table copies ledger_entry's columns, defaults, CHECKs and indexes (`LIKE ... INCLUDING ALL`);
    with `foreign_keys` it also gets ledger_entry's two foreign keys (DEFERRABLE INITIALLY DEFERRED,
    as Django creates them), checked at commit, which is inside the timing.
    """
    from django.db import connection, transaction

    table = "bench_floor_fk" if foreign_keys else "bench_floor"
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE TABLE {table} (LIKE ledger_entry INCLUDING ALL)")
        cursor.execute("SELECT id FROM ledger_journal ORDER BY id LIMIT 1")
        (journal_id,) = cursor.fetchone()
        cursor.execute("SELECT min(id), max(id) FROM ledger_account WHERE kind = 'user_available'")
        low, high = cursor.fetchone()
        if foreign_keys:
            cursor.execute(
                f"ALTER TABLE {table} ADD FOREIGN KEY (journal_id) REFERENCES ledger_journal (id)"
                " DEFERRABLE INITIALLY DEFERRED,"
                " ADD FOREIGN KEY (account_id) REFERENCES ledger_account (id) DEFERRABLE INITIALLY DEFERRED"
            )
    started = time.monotonic()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (journal_id, account_id, currency, amount_u)"
            " SELECT %s, %s + (i %% %s), 'USDC', i FROM generate_series(1, %s) i",
            [journal_id, low, high - low + 1, rows],
        )
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bets", type=int, default=1_000_000)
    parser.add_argument("--players", type=int, default=200_000)
    parser.add_argument("--check", action="store_true", help="run every ledger invariant afterwards")
    parser.add_argument(
        "--lock-with-service",
        action="store_true",
        help="lock through round_lock (times the Merkle root) instead of by SQL",
    )
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args()
    psql(f"DROP DATABASE IF EXISTS {DB}")
    psql(f"CREATE DATABASE {DB}")
    setup_django()
    try:
        code = prepare(args.bets, args.players)
        lock(code, with_service=args.lock_with_service)
        seconds, rows = settle(code)
        bare = floor(rows, args.players, foreign_keys=False)
        with_fk = floor(rows, args.players, foreign_keys=True)
        print(f"settlement: {seconds:.2f} s for {args.bets:,} bets ({rows:,} entry rows)")
        print(
            f"floor, INSERT ... SELECT generate_series of {rows:,} rows (LIKE ledger_entry INCLUDING ALL):"
            f" {bare:.2f} s -> ratio {seconds / bare:.2f}"
        )
        print(
            f"floor, same plus ledger_entry's two deferred foreign keys checked at commit:"
            f" {with_fk:.2f} s -> ratio {seconds / with_fk:.2f}"
        )
        print("goals: under 10 s for a million bets, ratio 3 or better")
        figures = [
            Figure(
                f"settle one round of {args.bets:,} bets",
                round(seconds, 2),
                "s",
                f"INSERT ... SELECT of {rows:,} entry rows {bare:.2f} s",
                round(seconds / bare, 2),
                "< 10 s for 1M bets, ratio <= 3",
                seconds / bare <= 3 and (args.bets > 1_000_000 or seconds < 10),
            ),
            Figure(
                "settlement vs the floor with ledger_entry's deferred foreign keys",
                round(seconds, 2),
                "s",
                f"the same plus two deferred FKs {with_fk:.2f} s",
                round(seconds / with_fk, 2),
            ),
        ]
        if args.check:
            from ledger.reconciliation import ledger_breaches

            breaches = ledger_breaches()
            print("ledger invariants:", "all hold" if not breaches else "; ".join(map(str, breaches)))
            figures.append(
                Figure(
                    "ledger invariants broken after settlement", len(breaches), "breaches", goal="0", met=not breaches
                )
            )
        write_figures("settlement", figures)
    finally:
        from django.db import connections

        connections.close_all()
        if not args.keep:
            psql(f"DROP DATABASE IF EXISTS {DB}")


if __name__ == "__main__":
    main()
