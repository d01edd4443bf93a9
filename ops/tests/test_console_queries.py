"""The dashboard's cost does not grow with the bets: a fixed number of queries over a million bets.

The timing lives in `bench/console.py`; this test asserts the query count (exactly) and that no query
reads the bets or the ledger entries, which is what keeps the page fast however many bets there are.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from rounds.models import Bet

from .bulk_rows import current_session_code, generate

pytestmark = pytest.mark.django_db

# session, user, and a fixed number for the figures (tvl, manual review, pending decisions, each kind of
# stuck job, today's round, switches, reconciliation, waivers, charts, payout outcomes); none reads bets or entries.
# The chain app's stuck-job finder adds 2 (on-chain transfers, on-chain deposits); the login lockouts 1.
DASHBOARD_QUERIES = 25


def test_dashboard_queries_are_fixed_with_a_million_bets(make_staff: Any, db_owner: Any) -> None:
    with db_owner():  # a million rows written set-based, ledger rows included: the owner's rights
        figures = generate(bets=1_000_000)
    assert Bet.objects.count() == 1_000_000 == figures["bets"]
    client = Client()
    client.force_login(make_staff(role="finance"))
    with CaptureQueriesContext(connection) as captured:
        response = client.get("/admin/")
    assert response.status_code == 200
    sql = [q["sql"] for q in captured.captured_queries]
    assert len(sql) == DASHBOARD_QUERIES, "\n".join(sql)
    assert not [s for s in sql if "rounds_bet" in s or "ledger_entry" in s]
    html = response.content.decode()
    assert 'id="manual-review-count">250<' in html  # a quarter of the 1,000 withdrawals failed their payout
    assert f"in {Bet.objects.filter(round__code=current_session_code()).count()} bets<" in html
