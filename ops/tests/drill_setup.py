"""The fault drill's data, written in a child process on the drill's own database (ops/tests/drill.py).

    python -m ops.tests.drill_setup OUT.json --players N

Run with DJANGO_SETTINGS_MODULE=config.settings.test and DATABASE_URL of the drill's cluster, after the
migrations: a finance operator of the drill's own (not a demo user: production refuses those) and an API token
for it, N funded players with API tokens, and the round that takes bets during the drill (opened through `rounds.services.round_open`).
Writes what the drill needs to OUT.json. In the few minutes before a session's close, until its close plus the
settle buffer, no round can take bets for `--needs-seconds` (the next round's reference, that close, is not final
yet): it says so and waits until the next round can open (at most MAX_WAIT_S), so the drill runs at any hour.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import time
from datetime import timedelta
from decimal import Decimal
from typing import Any

FUNDS_U = 1_000_000_000  # 1,000 USDC per player
# The longest wait for the next round: from `--needs-seconds` (600) before a lock to the close plus the settle buffer.
MAX_WAIT_S = 20 * 60


def open_round(*, needs_seconds: float) -> Any:
    """Open, through the service, the first round whose lock is far enough ahead (as bench/api.py does)."""
    from ops.actors import SystemActor
    from rounds import clock
    from rounds.domain import calendar
    from rounds.selectors import NEW_YORK
    from rounds.services import round_open

    now = clock.now()
    day = now.astimezone(NEW_YORK).date()
    for _ in range(10):
        session = calendar.next_session(on_or_after=day)
        times = calendar.session_times(day=session)
        if times.lock_utc > now:
            break
        day = session + timedelta(days=1)
    if (times.lock_utc - now).total_seconds() < needs_seconds:
        wait_s = (times.settle_after_utc - now).total_seconds() + 2
        if wait_s > MAX_WAIT_S:
            raise SystemExit(
                f"drill setup: round {times.code} locks at {times.lock_utc:%H:%M:%S}Z, too soon for the drill's bets, "
                f"and the next round opens only after {times.settle_after_utc:%H:%M:%S}Z: run the drill again then"
            )
        print(
            f"drill setup: round {times.code} locks at {times.lock_utc:%H:%M:%S}Z, too soon for the drill's bets; "
            f"waiting {wait_s:.0f} s for the next round to open (after {times.settle_after_utc:%H:%M:%S}Z)",
            flush=True,
        )
        time.sleep(wait_s)
        return open_round(needs_seconds=needs_seconds)
    round_obj, _ = round_open(
        code=times.code,
        acting_user=SystemActor("fault-drill"),
        reference_close=Decimal(100),
        reason="fault drill: a reference close by hand on the drill's own database (no oracle)",
    )
    return round_obj


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops.tests.drill_setup")
    parser.add_argument("out")
    parser.add_argument("--players", type=int, required=True)
    parser.add_argument("--needs-seconds", type=float, default=600)
    args = parser.parse_args(argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")
    import django

    django.setup()
    from django.contrib.auth.models import Group
    from knox.models import AuthToken

    from accounts.models import User
    from accounts.roles import FINANCE, ensure_operator_roles
    from ledger.services import operator_credit
    from ops.actors import SEED

    round_obj = open_round(needs_seconds=args.needs_seconds)
    ensure_operator_roles()
    operator = User.objects.create_user("drill-finance@example.com", secrets.token_urlsafe(24), is_staff=True)
    operator.groups.add(Group.objects.get(name=FINANCE))
    players = []
    for n in range(args.players):
        user = User.objects.create_user(f"drill-player{n}@example.com")
        operator_credit(
            user=user,
            amount_u=FUNDS_U,
            currency=round_obj.currency,
            actor=SEED,
            reference=f"drill:fund:{n}",
            reason="fault drill: a player's starting balance",
        )
        players.append(
            {"id": user.pk, "public_id": str(user.public_id), "token": AuthToken.objects.create(user=user)[1]}
        )
    with open(args.out, "w") as out:
        json.dump(
            {
                "round": round_obj.code,
                "currency": round_obj.currency,
                "lock_at": round_obj.lock_at.isoformat(),
                "min_stake_u": round_obj.min_stake_u,
                "funds_u": FUNDS_U,
                "operator_token": AuthToken.objects.create(user=operator)[1],
                "players": players,
            },
            out,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
