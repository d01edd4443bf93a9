"""Two database roles: the owner that migrates, and the application role every process connects as.

The owner role runs the migrations and owns every table and function. The application role
(`settings.DB_APP_ROLE`, `backoffice_app` by default) logs in, is no superuser, creates no database or
role, bypasses no row security, owns nothing, and gets on each relation of the schema exactly the
privileges it needs:

- SELECT, INSERT, UPDATE, DELETE on an application table, unless its app declares less in its
  AppConfig (`db_privileges = {"table": ("SELECT", ...)}`): the ledger's three tables are SELECT only
  (they change inside the ledger's SECURITY DEFINER functions), the audit tables SELECT, INSERT;
- SELECT on a view, and on `django_migrations` (only the owner migrates);
- USAGE, SELECT on the sequences; EXECUTE on the schema's functions (the ledger's definer functions
  have EXECUTE revoked from PUBLIC by their migration, so the application role holds it alone).

`setup_db_roles` (the command) applies this, idempotently: every relation's grants are revoked and
granted again, so a privilege granted by hand beyond these is taken back. Run it after every
`migrate` (bin/backoffice migrate, the test harness and the local scripts do): a table created by a
later migration has no grant for the application role until then. `grant_problems` lists every way
the database differs from this (the suite fails on any).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from django.apps import apps
from django.conf import settings
from django.db import connection, transaction

FULL = ("SELECT", "INSERT", "UPDATE", "DELETE")
READ = ("SELECT",)
TABLE_PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER")
# Tables of no app of the project: Django's record of applied migrations is the owner's alone.
FRAMEWORK_PRIVILEGES: dict[str, tuple[str, ...]] = {"django_migrations": READ}
ROLE_ATTRIBUTES = "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS NOREPLICATION INHERIT"


class DatabaseRoleError(Exception):
    """The roles cannot be set up as asked (the message says why, in one line)."""


def app_role() -> str:
    return str(getattr(settings, "DB_APP_ROLE", "") or "backoffice_app")


def declared_privileges() -> dict[str, tuple[str, ...]]:
    """Table name -> the application role's privileges, for the tables whose app restricts them."""
    declared = dict(FRAMEWORK_PRIVILEGES)
    for config in apps.get_app_configs():
        for table, privileges in getattr(config, "db_privileges", {}).items():
            declared[table] = tuple(privileges)
    return declared


def definer_functions() -> list[str]:
    """The names of the SECURITY DEFINER functions the apps declare (`db_definer_functions`)."""
    return [name for config in apps.get_app_configs() for name in getattr(config, "db_definer_functions", ())]


def _relations(cursor: Any) -> list[tuple[str, str]]:
    """(name, relkind) of every table, view and materialized view in the current schema."""
    cursor.execute(
        "SELECT c.relname, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p', 'v', 'm') ORDER BY c.relname"
    )
    return [(name, kind) for name, kind in cursor.fetchall()]


def expected_privileges(name: str, relkind: str, declared: Mapping[str, Sequence[str]]) -> tuple[str, ...]:
    if name in declared:
        return tuple(declared[name])
    return READ if relkind in ("v", "m") else FULL


def _quote(cursor: Any, name: str) -> str:
    cursor.execute("SELECT quote_ident(%s)", [name])
    return str(cursor.fetchone()[0])


def setup_db_roles(*, role: str | None = None, password: str | None = None) -> list[str]:
    """Create (or correct) the application role and grant it exactly its privileges; return what was done.

    Runs on the default connection, which must be the owner's (the role that ran the migrations).
    """
    role = role or app_role()
    lines: list[str] = []
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT session_user, current_user, current_database(), current_schema()")
        session_role, current_role, database, schema = cursor.fetchone()
        if role in (session_role, current_role):
            raise DatabaseRoleError(
                f"runs as the owner role, not as the application role {role!r}: "
                "connect with the owner's URL (DATABASE_OWNER_URL)."
            )
        quoted = _quote(cursor, role)
        cursor.execute(
            "SELECT rolcanlogin, rolsuper, rolcreatedb, rolcreaterole, rolbypassrls, rolreplication"
            " FROM pg_roles WHERE rolname = %s",
            [role],
        )
        found = cursor.fetchone()
        if found is None:
            cursor.execute(f"CREATE ROLE {quoted} {ROLE_ATTRIBUTES}")
            lines.append(f"created role {role}")
            found = (True, False, False, False, False, False)
        elif tuple(found) != (True, False, False, False, False, False):
            cursor.execute(f"ALTER ROLE {quoted} {ROLE_ATTRIBUTES}")
            lines.append(f"corrected the attributes of role {role}")
        else:
            lines.append(f"role {role} exists")
        if password:
            # An owner without CREATEROLE (compose's, whose roles the database's init created) leaves it as is.
            cursor.execute("SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = current_user")
            if cursor.fetchone()[0]:
                cursor.execute(f"ALTER ROLE {quoted} PASSWORD %s", [password])
                lines.append(f"set the password of {role} (DB_APP_PASSWORD)")
            else:
                lines.append(f"left the password of {role} as is ({current_role} may not alter roles)")
        cursor.execute("SELECT pg_has_role(%s, %s, 'MEMBER')", [role, current_role])
        if cursor.fetchone()[0]:
            raise DatabaseRoleError(f"{role} is a member of the owner role {current_role}: it would own the tables.")
        cursor.execute(f"GRANT CONNECT ON DATABASE {_quote(cursor, database)} TO {quoted}")
        quoted_schema = _quote(cursor, schema)
        cursor.execute(f"GRANT USAGE ON SCHEMA {quoted_schema} TO {quoted}")
        cursor.execute(f"REVOKE CREATE ON SCHEMA {quoted_schema} FROM {quoted}")
        declared = declared_privileges()
        relations = _relations(cursor)
        for name, relkind in relations:
            table = f"{quoted_schema}.{_quote(cursor, name)}"
            cursor.execute(f"REVOKE ALL ON TABLE {table} FROM {quoted}")
            cursor.execute(
                f"GRANT {', '.join(expected_privileges(name, relkind, declared))} ON TABLE {table} TO {quoted}"
            )
        restricted = sorted(name for name, _ in relations if name in declared)
        lines.append(f"granted {len(relations)} relations ({len(restricted)} restricted: {', '.join(restricted)})")
        cursor.execute(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {quoted_schema} TO {quoted}")
        cursor.execute(f"GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA {quoted_schema} TO {quoted}")
        lines.append("granted USAGE, SELECT on the sequences and EXECUTE on the functions")
        owned = owned_objects(cursor, role)
        if owned:
            raise DatabaseRoleError(f"{role} owns {', '.join(owned)}: the application role owns nothing.")
    return lines


def owned_objects(cursor: Any, role: str) -> list[str]:
    """What `role` owns in this database (relations, functions, schemas, types): nothing, for the app role."""
    cursor.execute(
        "SELECT what FROM pg_roles r, LATERAL ("
        " SELECT 'relation ' || c.relname AS what FROM pg_class c WHERE c.relowner = r.oid"
        " UNION ALL SELECT 'function ' || p.proname FROM pg_proc p WHERE p.proowner = r.oid"
        " UNION ALL SELECT 'schema ' || n.nspname FROM pg_namespace n WHERE n.nspowner = r.oid"
        " UNION ALL SELECT 'type ' || t.typname FROM pg_type t WHERE t.typowner = r.oid"
        " UNION ALL SELECT 'database ' || d.datname FROM pg_database d WHERE d.datdba = r.oid"
        ") o WHERE r.rolname = %s ORDER BY what",
        [role],
    )
    return [row[0] for row in cursor.fetchall()]


def grant_problems(cursor: Any, role: str | None = None) -> list[str]:
    """Every way the database differs from the application role's intended privileges (empty: none)."""
    role = role or app_role()
    problems: list[str] = []
    cursor.execute(
        "SELECT rolcanlogin, rolsuper, rolcreatedb, rolcreaterole, rolbypassrls FROM pg_roles WHERE rolname = %s",
        [role],
    )
    found = cursor.fetchone()
    if found is None:
        return [f"role {role} does not exist (run setup_db_roles)"]
    if tuple(found) != (True, False, False, False, False):
        problems.append(f"role {role} has attributes (login, super, createdb, createrole, bypassrls) = {found}")
    declared = declared_privileges()
    for name, relkind in _relations(cursor):
        expected = set(expected_privileges(name, relkind, declared))
        cursor.execute(
            "SELECT p FROM unnest(%s::text[]) AS p"
            " WHERE has_table_privilege(%s, (quote_ident(current_schema()) || '.' || quote_ident(%s))::regclass, p)",
            [list(TABLE_PRIVILEGES), role, name],
        )
        actual = {row[0] for row in cursor.fetchall()}
        if actual != expected:
            missing, extra = sorted(expected - actual), sorted(actual - expected)
            problems.append(
                f"{name}: "
                + "; ".join(
                    part
                    for part in (f"missing {missing}" if missing else "", f"extra {extra}" if extra else "")
                    if part
                )
            )
    cursor.execute(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = current_schema() AND c.relkind = 'S'"
        " AND NOT (has_sequence_privilege(%s, c.oid, 'USAGE') AND has_sequence_privilege(%s, c.oid, 'SELECT'))",
        [role, role],
    )
    problems.extend(f"sequence {name}: missing USAGE, SELECT" for (name,) in cursor.fetchall())
    cursor.execute("SELECT has_schema_privilege(%s, current_schema(), 'CREATE')", [role])
    if cursor.fetchone()[0]:
        problems.append(f"{role} may create objects in the schema")
    problems.extend(f"{role} owns {what}" for what in owned_objects(cursor, role))
    problems.extend(definer_problems(cursor, role))
    return problems


def definer_problems(cursor: Any, role: str) -> list[str]:
    """The declared definer functions: SECURITY DEFINER, pinned search_path, EXECUTE for `role`, not PUBLIC."""
    problems: list[str] = []
    names = definer_functions()
    cursor.execute(
        "SELECT p.proname, p.oid::regprocedure::text, p.prosecdef, coalesce(p.proconfig, '{}'),"
        " has_function_privilege(%s, p.oid, 'EXECUTE'),"
        " EXISTS (SELECT 1 FROM aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a"
        "         WHERE a.grantee = 0 AND a.privilege_type = 'EXECUTE'),"
        " pg_get_userbyid(p.proowner)"
        " FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace"
        " WHERE n.nspname = current_schema() AND p.proname = ANY (%s)",
        [role, names],
    )
    seen = set()
    for name, signature, definer, config, executable, public, owner in cursor.fetchall():
        seen.add(name)
        if not definer:
            problems.append(f"{signature} is not SECURITY DEFINER")
        if not any(str(item).startswith("search_path=") for item in config):
            problems.append(f"{signature} has no pinned search_path")
        if not executable:
            problems.append(f"{signature}: {role} may not execute it")
        if public:
            problems.append(f"{signature}: PUBLIC may execute it")
        if owner == role:
            problems.append(f"{signature} is owned by {role}")
    problems.extend(f"function {name} does not exist" for name in names if name not in seen)
    return problems
