"""Walk README.md's "The money loop, step by step" literally, on `make run`'s stack, and screenshot the console.

The stack is `ops/scripts/run_local.sh` (what `make run` runs) on a fresh database of its own (created here as the
server's owner, dropped after), its own ports and its own `RUN_DIR` (file broker, beat schedule), so it shares
nothing with the suite or with a developer's `make run`. Each `bash` block of the README's section runs as it is
written, in order, as one shell would run it: the variables and functions a block defines are handed to the next
(`declare -p`, exported or not, and `declare -f`), every command must succeed (`set -euo pipefail`). Only the
environment the README itself reads is given: HOST, PORT, STUB_PORT, RUN_DIR (the demo clock's folder) and
DATABASE_URL. Step 5 locks and settles the round on the demo clock (`demo_clock`, development only), so the round
really settles from the stub's oracle with a winner. Then the end state is checked through the API and
`check_ledger` (the payouts computed from the pools as the settlement rules do), the next round is seen open on
the shifted clock, and the console is photographed (artifacts/readme-loop/console.png).
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from ops.tests.processes import free_port, wait_until

pytestmark = [pytest.mark.browser]

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
SECTION = "## The money loop, step by step"
SCREENSHOT = ROOT / "artifacts" / "readme-loop" / "console.png"
BANNER = "ready: demo credentials"
# The settings of the suite's own processes that must not leak into `make run`'s (it is development, on its broker).
NOT_INHERITED = ("DJANGO_SETTINGS_MODULE", "REDIS_URL", "ENVIRONMENT", "DJANGO_ALLOW_ASYNC_UNSAFE", "RUN_DIR")


def loop_blocks() -> list[str]:
    """The section's ```bash blocks, in written order (an unlabelled block is an illustration, not a step)."""
    text = README.read_text()
    assert SECTION in text, f"README.md has no section {SECTION!r}"
    section = text.split(SECTION, 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^```bash\n(.*?)^```$", section, flags=re.S | re.M)


def _server_url(database: str) -> str:
    """The suite's PostgreSQL server (its owner's URL), pointed at another database."""
    url = os.environ.get("DATABASE_URL", "")
    assert url.startswith(("postgres://", "postgresql://")), (
        "DATABASE_URL is not set: run through `make test` (it sets it, the embedded server included)"
    )
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{database}"))


def _admin_sql(sql: str) -> None:
    import psycopg

    with psycopg.connect(_server_url("postgres"), autocommit=True) as conn:
        conn.execute(sql)


@pytest.fixture
def fresh_database() -> Iterator[str]:
    """A database of this test's own on the suite's server; dropped afterwards, whatever happened."""
    name = f"bo_readme_loop_{os.getpid()}"
    _admin_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    _admin_sql(f'CREATE DATABASE "{name}"')
    try:
        yield _server_url(name)
    finally:
        _admin_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class Stack:
    """`ops/scripts/run_local.sh` in a process group of its own, its output in a log file."""

    def __init__(self, *, database_url: str, run_dir: Path, log: Path) -> None:
        self.port, self.stub_port = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        bin_dir = Path(sys.executable).parent
        self.env = {k: v for k, v in os.environ.items() if k not in NOT_INHERITED}
        self.env.update(
            DATABASE_URL=database_url,
            HOST="127.0.0.1",
            PORT=str(self.port),
            STUB_PORT=str(self.stub_port),
            RUN_DIR=str(run_dir),
            BIN=str(bin_dir),
            PATH=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
            PYTHONUNBUFFERED="1",
        )
        self.process: subprocess.Popen[bytes] | None = None
        self.clock_offset_s = 0  # the demo clock's offset the stack starts with (`clear_of_the_round_gap`)

    def start(self) -> None:
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(  # noqa: S603
                ["bash", "ops/scripts/run_local.sh"],  # noqa: S607
                cwd=ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def announced(self) -> bool:
        assert self.process is not None and self.process.poll() is None, f"make run's stack died:\n{self.tail()}"
        return "PSP stub http://" in self.text().split(BANNER, 1)[-1] if BANNER in self.text() else False

    def tail(self, lines: int = 60) -> str:
        return "\n".join(self.text().splitlines()[-lines:])

    def stop(self) -> None:
        """SIGTERM the whole group (run_local.sh stops its children), SIGKILL whatever is left after 20 s."""
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(20)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(10)
        self.process = None


@pytest.fixture
def stack(fresh_database: str, tmp_path: Path) -> Iterator[Stack]:
    running = Stack(database_url=fresh_database, run_dir=tmp_path / "run", log=tmp_path / "make-run.log")
    running.clock_offset_s = clear_of_the_round_gap(tmp_path / "run")
    running.start()
    try:
        yield running
    finally:
        running.stop()


def clear_of_the_round_gap(run_dir: Path) -> int:
    """Start the stack's demo clock past the window in which no round can take bets for the whole walk; return
    the offset (seconds; 0 outside the window).

    From 3 min before a session's lock (the round would lock mid-walk) to 90 s after its settlement (no round is
    open before the next one's reference, this session's close, is final: README step 4 says so), the stack
    starts with its demo clock (`rounds.clock`, development only) just past that window instead of waiting it
    out: the same file `manage.py demo_clock` writes, so every process of the stack and the README's commands
    see it. The walk's own moves (step 5) then go on from there.
    """
    from rounds.clock import OFFSET_FILE
    from rounds.domain import calendar

    now = datetime.now(UTC)
    day = calendar.next_session(on_or_after=now.date() - timedelta(days=1))
    times = calendar.session_times(day=day)
    if times.settle_after_utc + timedelta(seconds=90) < now:
        times = calendar.session_times(day=calendar.next_session(on_or_after=day + timedelta(days=1)))
    gap_from, gap_to = times.lock_utc - timedelta(minutes=3), times.settle_after_utc + timedelta(seconds=90)
    if not gap_from <= now < gap_to:
        return 0
    offset = math.ceil((gap_to - now).total_seconds())
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / OFFSET_FILE).write_text(f"{offset}\n")
    return offset


# What one shell keeps from a block to the next: its variables, exported or not, as they are (so a `manage.py`
# command sees only what the README exports, as in a reader's shell), bash's own and read-only ones aside, and its
# functions.
SAVE_SHELL = r"""{
for __name in $(compgen -v); do
    case $__name in
        BASH*|EUID|UID|PPID|SHELLOPTS|FUNCNAME|PIPESTATUS|GROUPS|DIRSTACK|_|SHLVL|LINENO|RANDOM|SECONDS|SRANDOM|\
        EPOCHSECONDS|EPOCHREALTIME|HISTCMD|OPTIND|OPTARG|OPTERR|COLUMNS|LINES|PWD|OLDPWD|COMP_*|__name|__line)
            continue;;
    esac
    __line=$(declare -p "$__name" 2>/dev/null) || continue
    __flags=${__line#declare -}
    case ${__flags%% *} in *r*) continue;; esac
    printf '%s\n' "$__line"
done
declare -f
}"""


def run_block(number: int, block: str, *, env: dict[str, str], state: Path, log: Path) -> str:
    """Run one README block in bash as the previous blocks left the shell; fail with its output if it fails."""
    script = f"set -e -u -o pipefail\nsource {state}\n{block}\n{SAVE_SHELL} > {state}.next\n"
    done = subprocess.run(  # noqa: S603
        ["bash", "-c", script],  # noqa: S607
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    output = done.stdout + done.stderr
    with log.open("a") as out:
        out.write(f"---- block {number} (exit {done.returncode})\n{block}\n---- output\n{output}\n")
    assert done.returncode == 0, f"README loop block {number} failed (exit {done.returncode}):\n{block}\n{output}"
    Path(f"{state}.next").replace(state)
    return output


def _api(base: str, path: str, token: str) -> Any:
    request = urllib.request.Request(base + path, headers={"Authorization": f"Token {token}"})  # noqa: S310
    with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310
        return json.loads(answer.read())


def _login(base: str, email: str, password: str) -> str:
    request = urllib.request.Request(  # noqa: S310
        base + "/v1/auth/login",
        data=json.dumps({"email": email, "password": password}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310
        return str(json.loads(answer.read())["token"])


ALICE_UP_U, BOB_DOWN_U = 10_000_000, 5_000_000  # README step 4's bets (USDC, micro units)
BPS = 10_000


def settled_round_balances(stack: Stack, alice: str) -> dict[str, int]:
    """Check the walk's round settled from the stub's oracle with a winner, its figures as `rounds.domain.pool`
    computes them (fee on the whole pool, at most the losing side; the single winner takes the rest), and the
    next session's round open on the shifted clock; return Alice's and Bob's expected USDC balances."""
    from rounds.domain import calendar
    from webhooks.stub.control import demo_close

    bets = _api(stack.url, "/v1/bets?limit=10", alice)["results"]
    assert [(b["side"], b["stake_u"], b["round_status"]) for b in bets] == [("UP", ALICE_UP_U, "SETTLED")], bets
    code = bets[0]["round"]
    round_ = _api(stack.url, f"/v1/rounds/{code}", alice)
    settlement = round_["settlement"]
    day = calendar.parse_code(code)
    assert settlement["close"] == demo_close(day.isoformat()), settlement  # read from the stub's two sources
    winner = "UP" if Decimal(settlement["close"]) > Decimal(round_["reference_close"]) else "DOWN"
    assert settlement["result"] == winner, (round_, winner)
    total = ALICE_UP_U + BOB_DOWN_U
    loser_u = BOB_DOWN_U if winner == "UP" else ALICE_UP_U
    fee = min(total * round_["fee_bps"] // BPS, loser_u)
    assert fee > 0 and (settlement["fee_u"], settlement["payouts_total_u"], settlement["breakage_u"]) == (
        fee,
        total - fee,
        0,
    ), settlement
    alice_paid = total - fee if winner == "UP" else 0
    assert (bets[0]["payout_u"] or 0) == alice_paid, bets[0]
    if winner == "UP":
        assert alice_paid > ALICE_UP_U  # the winner got more than her stake back
    next_code = calendar.code_for(calendar.next_session(on_or_after=day + timedelta(days=1)))

    def next_round_open() -> bool:
        try:
            return bool(_api(stack.url, f"/v1/rounds/{next_code}", alice)["status"] == "OPEN")
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return False
            raise

    wait_until(next_round_open, 150, f"beat to open round {next_code} on the demo clock after {code} settled")
    return {
        "alice": 250_000_000 - ALICE_UP_U + alice_paid,
        "bob": 100_000_000 - BOB_DOWN_U + (total - fee if winner == "DOWN" else 0),
    }


def assert_end_state(stack: Stack) -> None:
    """Alice's balances and withdrawals as README step 9 says, the queue empty, the round settled with a winner and
    its payouts as the settlement rules compute them, the next round open, the ledger whole."""
    alice = _login(stack.url, "alice@example.com", "player-demo-pass")
    balances = {b["currency"]: b for b in _api(stack.url, "/v1/wallet", alice)["balances"]}
    assert (balances["USD"]["available_u"], balances["USD"]["held_u"]) == (
        10_000 + 15_000 + 1_200_000 - 2_000 - 1_050_000,
        0,
    )
    withdrawals = _api(stack.url, "/v1/withdrawals?limit=50", alice)["results"]
    assert sorted((w["amount_u"], w["provider"], w["state"]) for w in withdrawals) == [
        (2_000, "stripe", "paid"),
        (3_000, "adyen", "refunded"),
        (1_050_000, "adyen", "paid"),
    ]
    finance = _login(stack.url, "finance@example.com", "finance-demo-pass")
    assert _api(stack.url, "/v1/payouts/manual-review", finance)["count"] == 0
    bob = _login(stack.url, "bob@example.com", "player-demo-pass")
    expected = settled_round_balances(stack, alice)
    assert (balances["USDC"]["available_u"], balances["USDC"]["in_open_bets_u"]) == (expected["alice"], 0)
    bob_usdc = {b["currency"]: b for b in _api(stack.url, "/v1/wallet", bob)["balances"]}["USDC"]
    assert bob_usdc["available_u"] == expected["bob"]
    checked = subprocess.run(  # noqa: S603
        [sys.executable, "manage.py", "check_ledger"],
        cwd=ROOT,
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def screenshot_console(stack: Stack) -> None:
    """The operator's console as the demo admin sees it after the walk, in Debian's Chromium."""
    from ops.tests.browser import chromium

    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    SCREENSHOT.unlink(missing_ok=True)
    with chromium() as browser:
        page = browser.new_context(base_url=stack.url, viewport={"width": 1280, "height": 900}).new_page()
        page.goto("/admin/login/")
        page.fill("#id_username", "admin@example.com")
        page.fill("#id_password", "admin-demo-pass")
        page.click("input[type=submit]")
        page.wait_for_selector("#user-tools")
        page.goto("/admin/")
        text = page.inner_text("body")
        page.screenshot(path=str(SCREENSHOT), full_page=True)
    # The console's home after the walk: the current round (the walk's, settled, or the next one, open) and the
    # manual-review queue emptied by the refund.
    current = _api(stack.url, "/v1/rounds/current", _login(stack.url, "alice@example.com", "player-demo-pass"))
    assert current["status"] in ("SETTLED", "OPEN"), current
    assert "Operator's console" in text and "Manual-review queue" in text, text[:800]
    assert current["code"] in text and current["status"] in text, text[:800]


def test_the_readme_money_loop_runs_on_make_runs_stack(stack: Stack, tmp_path: Path) -> None:
    missing = [tool for tool in ("bash", "curl", "jq") if shutil.which(tool) is None]
    assert missing == [], f"the README's loop needs {', '.join(missing)}: install them (.ci/run does)"
    blocks = loop_blocks()
    assert len(blocks) == 10, f"README's loop should have steps 0 to 9 as bash blocks, found {len(blocks)}"
    wait_until(stack.announced, 240, "make run to print the credentials again once /health/ready answers")
    # The credentials come after the worker's start-up lines, so they do not scroll away under them.
    log = stack.text()
    worker_ready = re.search(r"celery@\S+ ready\.", log)
    assert worker_ready and log.index(BANNER) > worker_ready.start(), stack.tail()
    assert "finance2@example.com / finance2-demo-pass" in log.split(BANNER, 1)[1]

    state = tmp_path / "shell-state.sh"
    state.write_text("")
    env = {k: v for k, v in stack.env.items() if k != "BIN"}
    walk_log = tmp_path / "readme-loop.log"
    walk_log.write_text(f"demo clock offset at start: {stack.clock_offset_s} s (clear_of_the_round_gap)\n")
    try:
        for number, block in enumerate(blocks):
            run_block(number, block, env=env, state=state, log=walk_log)
        assert_end_state(stack)
        screenshot_console(stack)
    finally:
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        (SCREENSHOT.parent / "walk.log").write_text(walk_log.read_text() if walk_log.exists() else "")
        (SCREENSHOT.parent / "make-run.log").write_text(stack.text())
    assert SCREENSHOT.stat().st_size > 20_000, "the console screenshot is (nearly) empty"
