"""The ledger's three tables change only inside the ledger's own functions, run with the owner's rights.

The application connects as a role (`DB_APP_ROLE`, `ops.db_roles`) with SELECT only on `ledger_account`,
`ledger_journal` and `ledger_entry`. The functions that write them are `SECURITY DEFINER`: they run as
the role that owns them, the role that ran the migrations (the tables' owner), so a posting still
writes while a plain `UPDATE ledger_account SET balance_u = ...` from the application's connection is
refused. Each runs with a pinned `search_path` (`pg_catalog, public`, then `pg_temp` last, so a
temporary table of the caller's named `ledger_account` can never stand in for the real one), and
EXECUTE is revoked from PUBLIC: `setup_db_roles` grants it to the application role alone.

- `ledger_post`, `ledger_post_batch` (migration 0005), `ledger_post_staged` (0008): the posting doors.
- `ledger_account_open(name, currency, kind, owner_id, allow_negative)`: returns the account with that
  name and currency, opening it if needed (what `ledger.services.account_get_or_create` did with the
  ORM). Only an external clearing account (`psp:<provider>`) may go negative.
- The functions they and the triggers call (`ledger_posting_existing`, the entries' statement checks,
  the journals' deferred zero-sum check, the append-only guard) keep the caller's rights but get the
  same pinned `search_path`: the deferred zero-sum check runs at commit, outside any posting function,
  in the session's own search path otherwise.
"""

from django.db import migrations

POST = "ledger_post(varchar, varchar, varchar, jsonb, bigint, varchar, bigint, bigint[], varchar[], bigint[])"
POST_BATCH = "ledger_post_batch(varchar[], varchar[], varchar[], jsonb, bigint, varchar, integer[], bigint[], varchar[], bigint[])"
ACCOUNT_OPEN = "ledger_account_open(varchar, varchar, varchar, bigint, boolean)"
POST_STAGED = "ledger_post_staged(varchar, varchar, varchar, jsonb, bigint, varchar)"
DEFINERS = (POST, POST_BATCH, ACCOUNT_OPEN, POST_STAGED)
HELPERS = (
    "ledger_posting_existing(varchar, varchar, bigint)",
    "ledger_entry_statement_checks()",
    "ledger_journal_zero_sum()",
    "ledger_forbid_change()",
)
SEARCH_PATH = "pg_catalog, public, pg_temp"

ACCOUNT_OPEN_SQL = r"""
CREATE OR REPLACE FUNCTION ledger_account_open(
    p_name varchar, p_currency varchar, p_kind varchar, p_owner_id bigint, p_allow_negative boolean DEFAULT false
) RETURNS ledger_account LANGUAGE plpgsql AS $$
DECLARE
    account ledger_account;
BEGIN
    IF p_allow_negative AND p_kind <> 'external' THEN
        RAISE EXCEPTION 'only an external clearing account may go negative, not % (%)', p_name, p_kind
            USING ERRCODE = 'check_violation';
    END IF;
    SELECT * INTO account FROM ledger_account a WHERE a.name = p_name AND a.currency = p_currency;
    IF FOUND THEN
        RETURN account;
    END IF;
    INSERT INTO ledger_account AS a (name, currency, kind, owner_id, balance_u, allow_negative)
        VALUES (p_name, p_currency, p_kind, p_owner_id, 0, p_allow_negative)
        ON CONFLICT DO NOTHING
        RETURNING * INTO account;
    IF NOT FOUND THEN
        -- Opened meanwhile by a concurrent transaction (the insert waited for it): that one.
        SELECT * INTO account FROM ledger_account a WHERE a.name = p_name AND a.currency = p_currency;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'account % [%] conflicts with another account of its owner', p_name, p_currency
                USING ERRCODE = 'unique_violation';
        END IF;
    END IF;
    RETURN account;
END $$;
"""

FORWARD = "\n".join(
    [
        ACCOUNT_OPEN_SQL,
        *(f"ALTER FUNCTION {f} SECURITY DEFINER SET search_path = {SEARCH_PATH};" for f in DEFINERS),
        *(f"REVOKE EXECUTE ON FUNCTION {f} FROM PUBLIC;" for f in DEFINERS),
        *(f"ALTER FUNCTION {f} SET search_path = {SEARCH_PATH};" for f in HELPERS),
    ]
)
BACKWARD = "\n".join(
    [
        *(f"ALTER FUNCTION {f} RESET search_path;" for f in HELPERS),
        *(f"GRANT EXECUTE ON FUNCTION {f} TO PUBLIC;" for f in (POST, POST_BATCH, POST_STAGED)),
        f"ALTER FUNCTION {POST_STAGED} SET search_path = pg_catalog, public;",
        *(f"ALTER FUNCTION {f} SECURITY INVOKER RESET search_path;" for f in (POST, POST_BATCH)),
        f"DROP FUNCTION IF EXISTS {ACCOUNT_OPEN};",
    ]
)


class Migration(migrations.Migration):
    dependencies = [("ledger", "0008_posting_leg_staging")]
    operations = [migrations.RunSQL(FORWARD, BACKWARD)]
