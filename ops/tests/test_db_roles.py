"""The database trusts no one: what an insider with the application's own credentials can do, and can't.

The insider connects with psycopg directly as the application role (`backoffice_app`, the role
production's processes log in as) to the test database, and tries what the issue's insider did: move a
balance by hand, write or erase journals, entries and audit rows, switch the triggers off, become another
role. Each is refused by PostgreSQL and nothing changes (rows, balances, withdrawals, audit). The grants
themselves are checked table by table (`ops.db_roles.grant_problems`), so a table a later migration adds
without `setup_db_roles` fails here.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from io import StringIO
from typing import Any

import psycopg
import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection, connections

from ledger import services
from ledger.models import Account
from ops.actors import SystemActor
from ops.db_roles import app_role, grant_problems, setup_db_roles
from payouts.models import Withdrawal
from payouts.services import withdrawal_request
from payouts.tests.helpers import balances, destination_for, snapshot

DOLLARS = 1_000_000  # USDC minor units


@contextmanager
def insider(*, autocommit: bool = True) -> Iterator[psycopg.Connection[Any]]:
    """A connection of the insider's own: the application role's credentials, straight to PostgreSQL."""
    db = connection.settings_dict
    with psycopg.connect(
        host=db["HOST"] or "127.0.0.1",
        port=db["PORT"] or 5432,
        dbname=db["NAME"],
        user=app_role(),
        password=os.environ.get("DB_APP_PASSWORD") or None,
        autocommit=autocommit,
    ) as conn:
        with conn.cursor() as cursor:
            cursor.execute("SELECT session_user, current_user")
            assert cursor.fetchone() == (app_role(), app_role())
        yield conn


def refused(sql: str, params: Any = None) -> psycopg.Error:
    """Run one statement as the insider (autocommit); return the error PostgreSQL answered with."""
    with insider() as conn:
        try:
            conn.execute(sql, params)
        except psycopg.Error as exc:
            return exc
    raise AssertionError(f"the application role was allowed to run: {sql}")


def everything() -> dict[str, Any]:
    """What no refused statement may change: payouts' snapshot (ledger rows, balances, withdrawals,
    audit) plus every account's row, the ledger's triggers and the audit tables."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT id, name, currency, kind, owner_id, balance_u, allow_negative FROM ledger_account")
        accounts = sorted(cursor.fetchall())
        cursor.execute("SELECT count(*), coalesce(sum(amount_u), 0), coalesce(sum(abs(amount_u)), 0) FROM ledger_entry")
        entries = cursor.fetchone()
        cursor.execute("SELECT id, reference, fingerprint, metadata::text FROM ledger_journal ORDER BY id")
        journals = cursor.fetchall()
        cursor.execute("SELECT id, action, reason FROM audit_log ORDER BY id")
        audit = cursor.fetchall()
        cursor.execute("SELECT id, object_repr, changes::text FROM auditlog_logentry ORDER BY id")
        auditlog = cursor.fetchall()
        cursor.execute(
            "SELECT tgrelid::regclass::text, tgname, tgenabled FROM pg_trigger WHERE NOT tgisinternal ORDER BY 1, 2"
        )
        triggers = cursor.fetchall()
    return {
        **snapshot(),
        "accounts": accounts,
        "entry_sums": entries,
        "journal_rows": journals,
        "audit_rows": audit,
        "auditlog_rows": auditlog,
        "triggers": triggers,
    }


@pytest.fixture
def books(transactional_db: Any, make_player: Any) -> dict[str, Any]:
    """Committed money the insider can see: a player with $100, a withdrawal of $40 of it requested."""
    player = make_player()
    services.transfer(
        source=services.external_account(provider="test", currency="USDC"),
        destination=services.user_account(user=player, currency="USDC"),
        amount_u=100 * DOLLARS,
        type="deposit",
        reference=f"insider-test-deposit:{player.pk}",
        actor=SystemActor("test"),
    )
    withdrawal = withdrawal_request(
        user=player, amount_u=40 * DOLLARS, currency="USDC", provider="adyen", destination=destination_for("adyen")
    )
    available = services.user_account(user=player, currency="USDC")
    psp = services.external_account(provider="test", currency="USDC")
    return {"player": player, "withdrawal": withdrawal, "available": available, "psp": psp}


# --- The suite itself runs as the application role ---------------------------------------------------


@pytest.mark.django_db
def test_the_suite_connects_as_the_application_role() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_user")
        assert cursor.fetchone()[0] == app_role()
    seen: list[str] = []

    def in_a_thread() -> None:
        try:
            with connections["default"].cursor() as cursor:
                cursor.execute("SELECT current_user")
                seen.append(cursor.fetchone()[0])
        finally:
            connections.close_all()

    thread = threading.Thread(target=in_a_thread)
    thread.start()
    thread.join(30)
    assert seen == [app_role()]


# --- The grants, table by table ------------------------------------------------------------------


@pytest.mark.django_db
def test_every_relation_has_exactly_its_grants() -> None:
    with connection.cursor() as cursor:
        assert grant_problems(cursor) == []
        cursor.execute(
            "SELECT privilege_type FROM information_schema.role_table_grants"
            " WHERE grantee = %s AND table_name = 'ledger_account'",
            [app_role()],
        )
        assert [row[0] for row in cursor.fetchall()] == ["SELECT"]


@pytest.mark.django_db
def test_a_table_created_without_setup_db_roles_is_caught_then_granted(db_owner: Any) -> None:
    with db_owner() as cursor:
        cursor.execute("CREATE TABLE ops_role_probe (id bigint PRIMARY KEY)")
        problems = grant_problems(cursor)
        assert problems == ["ops_role_probe: missing ['DELETE', 'INSERT', 'SELECT', 'UPDATE']"]
        setup_db_roles()
        assert grant_problems(cursor) == []


@pytest.mark.django_db
def test_a_privilege_granted_by_hand_is_caught_and_taken_back(db_owner: Any) -> None:
    with db_owner() as cursor:
        cursor.execute(f'GRANT UPDATE, TRUNCATE ON ledger_account TO "{app_role()}"')
        cursor.execute(f'GRANT DELETE ON audit_log TO "{app_role()}"')
        assert grant_problems(cursor) == [
            "audit_log: extra ['DELETE']",
            "ledger_account: extra ['TRUNCATE', 'UPDATE']",
        ]
        setup_db_roles()
        assert grant_problems(cursor) == []


@pytest.mark.django_db
def test_setup_db_roles_is_idempotent_and_refuses_to_run_as_the_application_role(db_owner: Any) -> None:
    with db_owner():
        out = StringIO()
        call_command("setup_db_roles", stdout=out)
        call_command("setup_db_roles", stdout=out)
    lines = out.getvalue().splitlines()
    assert lines.count(f"setup_db_roles: role {app_role()} exists") == 2
    with pytest.raises(CommandError, match="runs as the owner role"):
        call_command("setup_db_roles", stdout=StringIO())  # the test's own connection: the application role


@pytest.mark.django_db
def test_the_application_role_is_no_superuser_and_owns_nothing() -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT rolcanlogin, rolsuper, rolcreatedb, rolcreaterole, rolbypassrls, rolreplication"
            " FROM pg_roles WHERE rolname = %s",
            [app_role()],
        )
        assert cursor.fetchone() == (True, False, False, False, False, False)
        cursor.execute(
            "SELECT count(*) FROM pg_class WHERE relowner = (SELECT oid FROM pg_roles WHERE rolname = %s)"
            " UNION ALL SELECT count(*) FROM pg_proc WHERE proowner = (SELECT oid FROM pg_roles WHERE rolname = %s)",
            [app_role(), app_role()],
        )
        assert [row[0] for row in cursor.fetchall()] == [0, 0]


@pytest.mark.django_db
def test_the_posting_functions_run_as_the_tables_owner_with_a_pinned_search_path() -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT p.proname, p.prosecdef, p.proconfig, p.proowner = (SELECT relowner FROM pg_class"
            "       WHERE oid = 'ledger_account'::regclass),"
            " has_function_privilege('public', p.oid, 'EXECUTE')"
            " FROM pg_proc p WHERE p.proname IN ('ledger_post', 'ledger_post_batch', 'ledger_account_open')"
            " ORDER BY p.proname"
        )
        rows = cursor.fetchall()
    assert [row[0] for row in rows] == ["ledger_account_open", "ledger_post", "ledger_post_batch"]
    for name, definer, config, owned_by_tables_owner, public in rows:
        assert definer, name
        assert config == ["search_path=pg_catalog, public, pg_temp"], name
        assert owned_by_tables_owner, name
        assert not public, name


# --- The insider ---------------------------------------------------------------------------------

LEDGER_WRITES = [
    "UPDATE ledger_account SET balance_u = balance_u + 100000000 WHERE id = %(available)s",
    "INSERT INTO ledger_account (name, currency, kind, balance_u, allow_negative, created_at)"
    " VALUES ('insider', 'USDC', 'user_available', 100000000, false, now())",
    "DELETE FROM ledger_account WHERE id = %(available)s",
    "UPDATE ledger_journal SET metadata = '{}'::jsonb",
    "INSERT INTO ledger_journal (type, reference, fingerprint, metadata, actor_label, created_at)"
    " VALUES ('deposit', 'insider-1', '', '{}', 'insider', now())",
    "DELETE FROM ledger_journal",
    "UPDATE ledger_entry SET amount_u = amount_u * 2 WHERE account_id = %(available)s",
    "INSERT INTO ledger_entry (journal_id, account_id, currency, amount_u, created_at)"
    " SELECT journal_id, account_id, currency, amount_u, now() FROM ledger_entry",
    "DELETE FROM ledger_entry",
    "TRUNCATE ledger_entry, ledger_journal, ledger_account CASCADE",
]
AUDIT_WRITES = [
    "UPDATE audit_log SET reason = 'rewritten'",
    "DELETE FROM audit_log",
    "TRUNCATE audit_log",
    "UPDATE auditlog_logentry SET object_repr = 'rewritten'",
    "DELETE FROM auditlog_logentry",
    "TRUNCATE auditlog_logentry",
]
ESCAPES = [
    "SET session_replication_role = replica",
    "SELECT set_config('session_replication_role', 'replica', false)",
    "ALTER TABLE ledger_entry DISABLE TRIGGER ALL",
    "ALTER TABLE ledger_journal DISABLE TRIGGER ledger_journal_zero_sum",
    "ALTER TABLE payouts_withdrawal DISABLE TRIGGER USER",
    "ALTER TABLE ledger_account DROP CONSTRAINT ledger_account_balance_not_negative",
    "ALTER FUNCTION ledger_post(varchar, varchar, varchar, jsonb, bigint, varchar, bigint, bigint[], varchar[],"
    " bigint[]) SECURITY INVOKER",
    "CREATE FUNCTION public.insider_door() RETURNS integer LANGUAGE sql AS 'SELECT 1'",
    "SET ROLE postgres",
    "SET SESSION AUTHORIZATION postgres",
    "CREATE ROLE insider_friend SUPERUSER LOGIN",
]


@pytest.mark.parametrize("statements", [LEDGER_WRITES, AUDIT_WRITES, ESCAPES], ids=["ledger", "audit", "escapes"])
def test_each_insider_statement_is_refused_and_nothing_changes(books: dict[str, Any], statements: list[str]) -> None:
    before = everything()
    for sql in statements:
        error = refused(sql, {"available": books["available"].pk})
        assert isinstance(error, psycopg.errors.InsufficientPrivilege), (sql, repr(error))
    with insider() as conn:
        conn.execute(f'GRANT UPDATE ON ledger_account TO "{app_role()}"')  # only a warning: nothing granted
        assert conn.execute("SELECT has_table_privilege(current_user, 'ledger_account', 'UPDATE')").fetchone() == (
            False,
        )
    assert everything() == before


def test_the_balance_inflation_is_refused_and_money_never_deposited_cannot_be_withdrawn(
    books: dict[str, Any], api_client_for: Any
) -> None:
    """The issue's insider: +$100 million by hand, then a $5,000 withdrawal. Both refused, nothing held."""
    player = books["player"]
    before, wallet = everything(), balances(player)
    assert wallet.available_u == 60 * DOLLARS and wallet.held_u == 40 * DOLLARS
    error = refused(
        "UPDATE ledger_account SET balance_u = balance_u + 100000000000000 WHERE name = %s AND currency = 'USDC'",
        [books["available"].name],
    )
    assert isinstance(error, psycopg.errors.InsufficientPrivilege)
    assert balances(player) == wallet
    response = api_client_for(player).post(
        "/v1/withdrawals",
        {"amount_u": 5_000 * DOLLARS, "currency": "USDC", "provider": "adyen", "destination": destination_for("adyen")},
        format="json",
        HTTP_IDEMPOTENCY_KEY="insider-5000",
    )
    assert response.status_code == 422, response.content
    assert response.json()["type"] == "ledger/insufficient-funds"
    assert balances(player) == wallet
    assert Withdrawal.objects.filter(user=player).count() == 1  # the $40 of the fixture only
    assert everything()["balances"] == before["balances"]
    assert everything()["withdrawals"] == before["withdrawals"]


def test_calling_the_posting_function_directly_cannot_mint_money(books: dict[str, Any]) -> None:
    """The door itself, called by hand with one leg (+$100 million to the player): the journals' zero-sum
    check refuses it at commit, even with a temporary `ledger_entry` of the insider's own shadowing the
    real one (the checks run with a pinned search_path)."""
    before = everything()
    available = books["available"].pk
    call = (
        "SELECT status FROM ledger_post('deposit', %s, '', '{}'::jsonb, NULL, 'insider', NULL,"
        " ARRAY[%s]::bigint[], ARRAY['USDC']::varchar[], ARRAY[100000000000000]::bigint[])"
    )
    error = refused(call, ["insider-mint-1", available])
    assert isinstance(error, psycopg.errors.CheckViolation), repr(error)
    assert "at least two are required" in str(error)

    with insider(autocommit=False) as conn:
        # Two entries summing to zero, in a table of the insider's own that an unpinned check would read.
        conn.execute(
            "CREATE TEMP TABLE ledger_entry (id bigint, journal_id bigint, account_id bigint, currency varchar,"
            " amount_u bigint, created_at timestamptz)"
        )
        assert conn.execute(call, ["insider-mint-2", available]).fetchone() == ("posted",)
        conn.execute(
            "INSERT INTO ledger_entry (journal_id, account_id, currency, amount_u)"
            " SELECT id, %s, 'USDC', 1 FROM public.ledger_journal WHERE reference = 'insider-mint-2'"
            " UNION ALL SELECT id, %s, 'USDC', -1 FROM public.ledger_journal WHERE reference = 'insider-mint-2'",
            [books["psp"].pk, books["psp"].pk],
        )
        with pytest.raises(psycopg.errors.CheckViolation, match="at least two are required"):
            conn.commit()
    assert everything() == before


def test_a_shadow_account_table_cannot_fake_a_balance_for_the_posting_function(books: dict[str, Any]) -> None:
    """A temporary `ledger_account` claiming $1 billion for the player: the function reads the real one."""
    before = everything()
    available, psp = books["available"].pk, books["psp"].pk
    with insider(autocommit=False) as conn:
        conn.execute("CREATE TEMP TABLE ledger_account (LIKE public.ledger_account)")
        conn.execute("INSERT INTO ledger_account SELECT * FROM public.ledger_account WHERE id = %s", [available])
        conn.execute("UPDATE ledger_account SET balance_u = 1000000000000000")  # the temporary table
        status = conn.execute(
            "SELECT status FROM ledger_post('withdrawal_paid', 'insider-shadow', '', '{}'::jsonb, NULL, 'insider',"
            " NULL, ARRAY[%s, %s]::bigint[], ARRAY['USDC', 'USDC']::varchar[], ARRAY[-5000000000, 5000000000]::bigint[])",
            [available, psp],
        ).fetchone()
        assert status == ("insufficient_funds",)
        conn.commit()
    assert everything() == before


def test_a_raw_update_of_a_withdrawals_state_is_refused(books: dict[str, Any]) -> None:
    withdrawal = books["withdrawal"]
    before = everything()
    error = refused("UPDATE payouts_withdrawal SET state = 'paid' WHERE id = %s", [withdrawal.pk])
    assert "red line" in str(error), repr(error)
    assert everything() == before


def test_the_service_write_flag_does_not_open_the_red_line_to_the_application_role(books: dict[str, Any]) -> None:
    """`set_config('backoffice.service_write', 'on', true)` is a setting any session may set: it must not
    let a raw UPDATE of a withdrawal's state through (needs h19-stage's red-line mechanism)."""
    withdrawal = books["withdrawal"]
    before = everything()
    with insider(autocommit=False) as conn:
        try:
            conn.execute("SELECT set_config('backoffice.service_write', 'on', true)")
            conn.execute("UPDATE payouts_withdrawal SET state = 'paid' WHERE id = %s", [withdrawal.pk])
            updated = True
        except psycopg.Error:
            updated = False
        finally:
            conn.rollback()  # whatever happened, the insider's change is not kept for the other tests
    assert not updated, "a raw UPDATE of a withdrawal's state went through with the service_write flag set"
    assert everything() == before


def test_the_test_database_is_the_one_the_insider_reaches(books: dict[str, Any]) -> None:
    with insider() as conn:
        row = conn.execute("SELECT current_database()").fetchone()
    assert row is not None
    (name,) = row
    assert name == connection.settings_dict["NAME"] == settings.DATABASES["default"]["NAME"]
    assert name.startswith("test_")
    assert Account.objects.filter(pk=books["available"].pk).exists()
