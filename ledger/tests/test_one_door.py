"""The ledger is the one door to the money tables: no module outside `ledger/` names them in SQL.

Other apps read the ledger through its selectors and models and write it through its services
(`journal_post`, `transfer`, `journal_post_staged` over rows staged in `POSTING_LEG_TABLE`); the invariants then depend only on code the ledger owns.
"""

from __future__ import annotations

import io
import re
import tokenize
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LEDGER_TABLE = re.compile(r"\bledger_(account|entry|journal|entries|ledgerbreach|reconciliationrun)\b")
STRING_TOKENS = {tokenize.STRING, getattr(tokenize, "FSTRING_MIDDLE", tokenize.STRING)}  # 3.12 splits f-strings
APPS = ("accounts", "config", "ops", "payouts", "rounds", "webhooks")


def modules_outside_the_ledger() -> list[Path]:
    return [
        path
        for app in APPS
        for path in sorted((ROOT / app).rglob("*.py"))
        if "tests" not in path.parts and "migrations" not in path.parts
    ]


def strings_naming_ledger_tables(source: str) -> list[tuple[int, str]]:
    """The string literals (SQL lives in strings) that name a ledger table, with their line numbers."""
    tokens = tokenize.generate_tokens(io.StringIO(source).readline)
    return [
        (tok.start[0], tok.string) for tok in tokens if tok.type in STRING_TOKENS and LEDGER_TABLE.search(tok.string)
    ]


def test_no_module_outside_the_ledger_names_a_ledger_table() -> None:
    offenders = [
        f"{path.relative_to(ROOT)}:{number}: {text}"
        for path in modules_outside_the_ledger()
        for number, text in strings_naming_ledger_tables(path.read_text())
    ]
    assert offenders == [], "SQL on ledger tables outside ledger/:\n" + "\n".join(offenders)


def test_the_scan_sees_what_it_looks_for() -> None:
    assert len(modules_outside_the_ledger()) > 50
    assert strings_naming_ledger_tables('cursor.execute("UPDATE ledger_account SET balance_u = 0")')
    assert strings_naming_ledger_tables('sql = f"SELECT 1 FROM ledger_entries WHERE {where}"')
    assert not strings_naming_ledger_tables("context.update(ledger_entries=entries)")  # a name, not SQL
    assert not strings_naming_ledger_tables("self.instance.ledger_accounts.exists()")
