"""The house manual's daily report SQL runs verbatim (through psql, as the manual pipes it) on `users` and
`bets`, read-only views over the players and the bets."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from rounds.models import Bet

pytestmark = pytest.mark.django_db(transaction=True)

# Verbatim from the house operating manual's "Daily Reports" block.
TOTAL_USERS = "SELECT COUNT(*) FROM users;"
ACTIVE_BETTORS = "SELECT COUNT(DISTINCT user_id) FROM bets WHERE DATE(created_at) = CURRENT_DATE;"
DAILY_VOLUME = "SELECT SUM(stake_u) FROM bets WHERE DATE(created_at) = CURRENT_DATE;"


def psql(sql: str) -> str:
    """`echo '<sql>' | psql -d <db> -t`, as the manual runs it (against the test database)."""
    db = connection.settings_dict
    result = subprocess.run(  # noqa: S603
        [
            "psql",
            "-h",
            db["HOST"] or "127.0.0.1",
            "-p",
            str(db["PORT"] or 5432),
            "-U",
            db["USER"],
            "-d",
            db["NAME"],
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
        ],
        input=sql,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_the_daily_report_sql_runs_verbatim(open_round: Any, place: Any, make_staff: Any) -> None:
    round_obj = open_round()
    bets = [place(round_obj, "UP", 5_000_000), place(round_obj, "DOWN", 7_000_000), place(round_obj, "UP", 1_000_000)]
    make_staff(role="finance")  # an operator is not a user of the platform
    # Two of the three bets were placed today (the fixture's clock is in 2025): move them to now.
    Bet.objects.filter(pk__in=[bets[0].pk, bets[1].pk]).update(placed_at=timezone.now())

    assert psql(TOTAL_USERS) == "3"
    assert psql(ACTIVE_BETTORS) == "2"
    assert psql(DAILY_VOLUME) == "12000000"


@pytest.mark.parametrize(
    "statement",
    [
        "INSERT INTO users (email) VALUES ('x@example.com')",
        "UPDATE users SET email = 'x@example.com'",
        "DELETE FROM users",
        "UPDATE bets SET stake_u = 1",
        "DELETE FROM bets",
    ],
)
def test_the_views_are_read_only(open_round: Any, place: Any, statement: str, db_owner: Any) -> None:
    """The application role may only read the views; the views' own trigger refuses even their owner."""
    bet = place(open_round(), "UP", 5_000_000)
    with pytest.raises(DatabaseError, match="permission denied"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(statement)
    with pytest.raises(DatabaseError, match="is read-only"), transaction.atomic(), db_owner() as cursor:
        cursor.execute(statement)
    bet.refresh_from_db()
    assert bet.stake_u == 5_000_000
    assert Bet.objects.count() == 1
    assert type(bet.player).objects.filter(email="x@example.com").count() == 0
