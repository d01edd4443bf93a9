#!/usr/bin/env python
"""The last step of `make bench`: one table of every figure the benchmarks wrote, its floor and its goal.

    .venv/bin/python bench/summary.py [--dir artifacts/bench]

Reads each `<bench>.json` that bench/_common.write_figures wrote (ledger, webhooks, settlement, console, api,
rush, then any other, by name) and prints, per figure, its value, the floor it is compared with (measured in the
same run), the ratio, the goal and MET / MISSED (blank when the figure has no goal).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from _common import ARTIFACTS, ROOT

ORDER = ["ledger", "webhooks", "settlement", "console", "api", "rush"]


def _number(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 or float(value).is_integer() else f"{value:,.3g}"


def _verdict(met: bool | None) -> str:
    return "" if met is None else ("MET" if met else "MISSED")


def load(directory: Path) -> list[dict[str, Any]]:
    documents = [json.loads(path.read_text()) for path in directory.glob("*.json")]
    return sorted(documents, key=lambda d: (ORDER.index(d["bench"]) if d["bench"] in ORDER else len(ORDER), d["bench"]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", type=Path, default=ARTIFACTS, help="where the figures are (default artifacts/bench)")
    args = parser.parse_args()
    documents = load(args.dir)
    if not documents:
        print(f"no figures in {args.dir}: run the benchmarks first (make bench)")
        return 1
    table = [("bench", "figure", "value", "floor (same run)", "ratio", "goal", "")]
    for document in documents:
        for row in document["rows"]:
            table.append(
                (
                    document["bench"],
                    row["figure"],
                    f"{_number(row['value'])} {row['unit']}",
                    row["floor"] or "",
                    "" if row["ratio"] is None else _number(row["ratio"]),
                    row["goal"] or "",
                    _verdict(row["met"]),
                )
            )
    widths = [max(len(line[i]) for line in table) for i in range(len(table[0]))]
    right = {2, 4}
    where = args.dir.relative_to(ROOT) if args.dir.is_relative_to(ROOT) else args.dir
    written = ", ".join(f"{d['bench']} {d['written_at']}" for d in documents)
    print(f"\nbenchmark figures ({where}; written {written})")
    for index, line in enumerate(table):
        cells = [cell.rjust(widths[i]) if i in right else cell.ljust(widths[i]) for i, cell in enumerate(line)]
        print("  ".join(cells).rstrip())
        if index == 0:
            print("  ".join("-" * width for width in widths))
    verdicts = [row["met"] for document in documents for row in document["rows"] if row["met"] is not None]
    print(f"\ngoals: {verdicts.count(True)} met, {verdicts.count(False)} missed, of {len(verdicts)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
