"""What the benchmarks share: psql, pgbench's TPC-B floor, and the figures file `make bench` summarises.

Every benchmark writes its figures to `artifacts/bench/<name>.json` in one shape,
`{"bench": name, "written_at": ..., "rows": [{"figure", "value", "unit", "floor", "ratio", "goal", "met"}]}`,
and `bench/summary.py` prints them all as one table. `floor` names the floor and its value as measured in
the same run (or is null), `ratio` is value / floor (or null), `goal` says what is wanted in words (or is
null), `met` is true, false, or null when the figure has no goal.
"""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "artifacts" / "bench"


@dataclass(frozen=True)
class Figure:
    figure: str
    value: float
    unit: str
    floor: str | None = None
    ratio: float | None = None
    goal: str | None = None
    met: bool | None = None


def write_figures(bench: str, rows: list[Figure], path: Path | None = None) -> Path:
    """Write the figures of one benchmark to artifacts/bench/<bench>.json (or `path`); return the path."""
    target = path or ARTIFACTS / f"{bench}.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "bench": bench,
        "written_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "rows": [asdict(row) for row in rows],
    }
    target.write_text(json.dumps(document, indent=2) + "\n")
    return target


def psql(sql: str) -> None:
    subprocess.run(["psql", "-q", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-c", sql], check=True)


def pgbench_init(database: str) -> None:
    """Create `database` afresh with pgbench's TPC-B tables at scale 10."""
    psql(f"DROP DATABASE IF EXISTS {database}")
    psql(f"CREATE DATABASE {database}")
    subprocess.run(
        ["pgbench", "-q", "-i", "-s", "10", "-h", "127.0.0.1", "-U", "postgres", database],
        check=True,
        capture_output=True,
    )


def pgbench_run(database: str, clients: int, seconds: int) -> float:
    """Run TPC-B in an initialised `database` for `seconds` at `clients`; return its tps."""
    result = subprocess.run(
        [
            "pgbench",
            "-c",
            str(clients),
            "-j",
            str(clients),
            "-T",
            str(seconds),
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            database,
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    match = re.search(r"tps = ([\d.]+) \(without initial connection time\)", result.stdout)
    if not match:
        raise SystemExit(f"could not read pgbench's tps from:\n{result.stdout}")
    return float(match.group(1))


def pgbench_tps(clients: int, seconds: int, database: str) -> float:
    """pgbench's TPC-B (scale 10) in a fresh `database` for `seconds` at `clients`; return its tps. Drops it after."""
    try:
        pgbench_init(database)
        return pgbench_run(database, clients, seconds)
    finally:
        psql(f"DROP DATABASE IF EXISTS {database}")
