"""A million bets' worth of rows, generated with set-based SQL (as `bench/settlement.py` does).

Used by the dashboard's query-count test and by `bench/console.py`. Rounds (one per day for 30 days and
the current session's), players and their accounts, `bets` bets spread over the rounds (one per player
per round, so no constraint is dropped), and a few thousand deposits, withdrawals and payout attempts
over the same days. Round pools are set from the bets in SQL (and an OPEN round's pool stripes), as the
bet service and the lock keep them.
"""

from __future__ import annotations

import hashlib
import math
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from django.db import connection
from django.utils import timezone


def current_session_code() -> str:
    from rounds.domain.calendar import code_for, next_session
    from rounds.selectors import NEW_YORK

    return code_for(next_session(on_or_after=timezone.now().astimezone(NEW_YORK).date()))


def generate(*, bets: int = 1_000_000, days: int = 30, side_rows: int = 3_000) -> dict[str, Any]:
    """Generate the rows in the current database (inside the caller's transaction if any)."""
    from ledger.models import Account, Journal
    from payouts.models import PayoutAttempt, Withdrawal
    from rounds.models import Round
    from rounds.pools import POOL_STRIPES
    from webhooks.models import Deposit

    today = timezone.now().date()
    codes = [f"{today - timedelta(days=i):%Y%m%d}" for i in range(days, 0, -1)]
    current = current_session_code()
    codes = [c for c in codes if c != current] + [current]
    pools = Account.objects.bulk_create(
        [Account(name=f"round:{c}:pool", currency="USDC", kind=Account.Kind.ROUND_POOL) for c in codes]
    )
    rounds = []
    for code, pool in zip(codes, pools, strict=True):
        day = date(int(code[:4]), int(code[4:6]), int(code[6:]))
        close = datetime.combine(day, time(21, 0), tzinfo=UTC)
        settled = code != current
        rounds.append(
            Round(
                code=code,
                instrument="NASDAQ-COMPOSITE",
                currency="USDC",
                status=Round.Status.SETTLED if settled else Round.Status.OPEN,
                pool_account=pool,
                open_at=close - timedelta(hours=30),
                lock_at=close - timedelta(seconds=1),
                close_at=close,
                settle_after=close + timedelta(minutes=5),
                fee_bps=100,
                min_stake_u=1_000_000,
                reference_close="100",
                reference_session=day - timedelta(days=1),
                rules_version="bulk",
                commit=hashlib.sha256(code.encode()).hexdigest(),
                salt="bulk",
                result="UP" if settled else "",
                close_price="101" if settled else "",
                settled_at=close + timedelta(minutes=6) if settled else None,
            )
        )
    Round.objects.bulk_create(rounds)
    n_rounds = len(codes)
    players = math.ceil(bets / n_rounds)
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO accounts_user (password, is_superuser, public_id, email, display_name, is_staff,"
            " is_active, date_joined) SELECT '!', false, gen_random_uuid(), 'bulk' || i || '@example.com', '',"
            " false, true, now() FROM generate_series(1, %s) i",
            [players],
        )
        cursor.execute(
            "INSERT INTO ledger_account (name, currency, kind, owner_id, balance_u, allow_negative)"
            " SELECT 'user:' || u.public_id || ':available', 'USDC', 'user_available', u.id, 1000000, false"
            " FROM accounts_user u WHERE u.email LIKE 'bulk%%@example.com'"
        )
        cursor.execute(
            "CREATE TEMP TABLE bulk_players ON COMMIT DROP AS SELECT row_number() OVER (ORDER BY a.id) - 1 AS n,"
            " a.owner_id, a.id AS account_id FROM ledger_account a JOIN accounts_user u ON u.id = a.owner_id"
            " WHERE u.email LIKE 'bulk%%@example.com'"
        )
        cursor.execute(
            "CREATE TEMP TABLE bulk_rounds ON COMMIT DROP AS SELECT row_number() OVER (ORDER BY id) - 1 AS n, id,"
            " lock_at FROM rounds_round WHERE rules_version = 'bulk'"
        )
        # The bets' foreign keys hold by construction (joined from the rows above); skipping their
        # per-row FK triggers for this one statement saves queuing three million deferred checks.
        cursor.execute("SET LOCAL session_replication_role = replica")
        cursor.execute(
            "INSERT INTO rounds_bet (round_id, player_id, account_id, bet_id, side, stake_u, placed_at, flow_id)"
            " SELECT r.id, p.owner_id, p.account_id, gen_random_uuid(),"
            "  CASE WHEN i %% 3 = 0 THEN 'DOWN' ELSE 'UP' END, 1000000 + (i %% 97) * 10000,"
            "  r.lock_at - interval '2 hours' + (i %% 3600) * interval '1 second',"
            "  'bet-' || replace(gen_random_uuid()::text, '-', '')"
            " FROM generate_series(0, %s - 1) i JOIN bulk_rounds r ON r.n = i %% %s JOIN bulk_players p ON p.n = i / %s",
            [bets, n_rounds, n_rounds],
        )
        cursor.execute("SET LOCAL session_replication_role = origin")
        cursor.execute(
            "UPDATE rounds_round r SET up_pool_u = s.up, down_pool_u = s.down, up_bets = s.nu, down_bets = s.nd,"
            " fee_u = CASE WHEN r.status = 'SETTLED' THEN (s.up + s.down) * r.fee_bps / 10000 END"
            " FROM (SELECT round_id, COALESCE(SUM(stake_u) FILTER (WHERE side = 'UP'), 0) up,"
            "  COALESCE(SUM(stake_u) FILTER (WHERE side = 'DOWN'), 0) down,"
            "  COUNT(*) FILTER (WHERE side = 'UP') nu, COUNT(*) FILTER (WHERE side = 'DOWN') nd"
            "  FROM rounds_bet GROUP BY round_id) s WHERE r.id = s.round_id"
        )
        # An OPEN round's pools so far are its pool stripes' figures, as the bet service adds them.
        cursor.execute(
            "INSERT INTO rounds_poolstripe (round_id, stripe, up_pool_u, down_pool_u, up_bets, down_bets)"
            " SELECT b.round_id, b.player_id %% %s, COALESCE(SUM(b.stake_u) FILTER (WHERE b.side = 'UP'), 0),"
            "  COALESCE(SUM(b.stake_u) FILTER (WHERE b.side = 'DOWN'), 0),"
            "  COUNT(*) FILTER (WHERE b.side = 'UP'), COUNT(*) FILTER (WHERE b.side = 'DOWN')"
            " FROM rounds_bet b JOIN rounds_round r ON r.id = b.round_id AND r.status = 'OPEN'"
            " GROUP BY b.round_id, b.player_id %% %s",
            [POOL_STRIPES, POOL_STRIPES],
        )
        cursor.execute("SELECT owner_id FROM bulk_players ORDER BY n LIMIT %s", [side_rows])
        owners = [row[0] for row in cursor.fetchall()]
    now = timezone.now()
    journals = Journal.objects.bulk_create(
        [
            Journal(type="deposit", reference=f"deposit:bulk-{i}", fingerprint="bulk", actor_label="bulk")
            for i in range(side_rows)
        ],
        batch_size=1000,
    )
    Deposit.objects.bulk_create(
        [
            Deposit(
                provider="custody",
                reference=f"bulk-{i}",
                user_id=owners[i % len(owners)],
                amount_u=1_000_000 * (1 + i % 50),
                currency="USDC",
                status=Deposit.Status.CREDITED,
                created_at=now - timedelta(hours=i % (24 * days)),
                credited_at=now - timedelta(hours=i % (24 * days)),
                journal=journal,
            )
            for i, journal in enumerate(journals)
        ],
        batch_size=1000,
    )
    external = Account.objects.create(name="psp:bulk", currency="USDC", kind=Account.Kind.EXTERNAL, allow_negative=True)
    with connection.cursor() as cursor:  # each deposit journal's two legs (the zero-sum trigger wants them)
        cursor.execute(
            "INSERT INTO ledger_entry (journal_id, account_id, currency, amount_u, created_at)"
            " SELECT d.journal_id, leg.account_id, 'USDC', leg.sign * d.amount_u, d.credited_at"
            " FROM webhooks_deposit d JOIN ledger_account a ON a.owner_id = d.user_id AND a.kind = 'user_available'"
            " CROSS JOIN LATERAL (VALUES (%s::bigint, -1), (a.id, 1)) AS leg(account_id, sign)"
            " WHERE d.reference LIKE 'bulk-%%'",
            [external.pk],
        )
    states = [Withdrawal.State.PAID, Withdrawal.State.PAID, Withdrawal.State.PAYOUT_FAILED, Withdrawal.State.REQUESTED]
    # Synthetic rows with no journals behind them: the red line (a withdrawal is born requested, with its hold)
    # would refuse them, so they are written with the triggers off, as only the owner or a superuser can.
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL session_replication_role = replica")
    withdrawals = Withdrawal.objects.bulk_create(
        [
            Withdrawal(
                user_id=owners[i % len(owners)],
                amount_u=500_000 * (1 + i % 20),
                currency="USDC",
                provider="adyen",
                destination={"transfer_instrument_id": f"SE{i:023d}"},
                state=states[i % len(states)],
                created_at=now - timedelta(hours=i % (24 * days)),
                state_changed_at=now - timedelta(hours=i % (24 * days)),
            )
            for i in range(side_rows // 3)
        ],
        batch_size=1000,
    )
    outcomes = ["accepted", "accepted", "accepted", "declined", "ambiguous"]
    PayoutAttempt.objects.bulk_create(
        [
            PayoutAttempt(
                withdrawal=w,
                provider="adyen",
                idempotency_key=f"wd-{w.pk}-1",
                outcome=outcomes[i % len(outcomes)],
                started_at=w.created_at,
            )
            for i, w in enumerate(withdrawals)
        ],
        batch_size=1000,
    )
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL session_replication_role = origin")
        for table in (
            "rounds_bet",
            "rounds_round",
            "ledger_account",
            "accounts_user",
            "webhooks_deposit",
            "payouts_withdrawal",
            "payouts_payoutattempt",
        ):
            cursor.execute(f"ANALYZE {table}")  # noqa: S608 (fixed table names)
    return {
        "bets": bets,
        "rounds": n_rounds,
        "players": players,
        "deposits": side_rows,
        "withdrawals": len(withdrawals),
    }
