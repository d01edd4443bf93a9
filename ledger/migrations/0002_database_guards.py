"""Database-level guards for the ledger, and the house manual's `ledger_entries` view.

- journals and entries are append-only (UPDATE and DELETE raise);
- a statement trigger refuses entries added to a journal committed by another transaction
  (`created_txid`, a column only the database knows, records the creating transaction) and entries
  whose currency differs from their account's;
- a deferred constraint trigger, one per journal, checks at commit that the journal has two or more
  entries summing to zero per currency.
"""

from django.db import migrations

PG_FORWARD = r"""
CREATE OR REPLACE FUNCTION ledger_forbid_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ledger rows are append-only: % on % refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'restrict_violation';
END $$;

CREATE TRIGGER ledger_entry_append_only BEFORE UPDATE OR DELETE ON ledger_entry
    FOR EACH ROW EXECUTE FUNCTION ledger_forbid_change();
CREATE TRIGGER ledger_journal_append_only BEFORE UPDATE OR DELETE ON ledger_journal
    FOR EACH ROW EXECUTE FUNCTION ledger_forbid_change();

ALTER TABLE ledger_journal ADD COLUMN created_txid bigint NOT NULL DEFAULT txid_current();

CREATE OR REPLACE FUNCTION ledger_entry_statement_checks() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM new_entries n JOIN ledger_journal j ON j.id = n.journal_id
               WHERE j.created_txid <> txid_current()) THEN
        RAISE EXCEPTION 'entries may only be added in the transaction that creates their journal'
            USING ERRCODE = 'restrict_violation';
    END IF;
    IF EXISTS (SELECT 1 FROM new_entries n JOIN ledger_account a ON a.id = n.account_id
               WHERE a.currency <> n.currency) THEN
        RAISE EXCEPTION 'an entry''s currency must be its account''s currency'
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER ledger_entry_statement_checks AFTER INSERT ON ledger_entry
    REFERENCING NEW TABLE AS new_entries
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_entry_statement_checks();

CREATE OR REPLACE FUNCTION ledger_journal_zero_sum() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    entry_count bigint;
    bad record;
BEGIN
    SELECT count(*) INTO entry_count FROM ledger_entry WHERE journal_id = NEW.id;
    IF entry_count < 2 THEN
        RAISE EXCEPTION 'journal % (%) has % entries; at least two are required',
            NEW.id, NEW.reference, entry_count USING ERRCODE = 'check_violation';
    END IF;
    SELECT currency, sum(amount_u) AS total INTO bad FROM ledger_entry
        WHERE journal_id = NEW.id GROUP BY currency HAVING sum(amount_u) <> 0 LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'journal % (%) does not sum to zero in %: off by %',
            NEW.id, NEW.reference, bad.currency, bad.total USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END $$;

CREATE CONSTRAINT TRIGGER ledger_journal_zero_sum AFTER INSERT ON ledger_journal
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION ledger_journal_zero_sum();
"""

PG_BACKWARD = r"""
DROP TRIGGER IF EXISTS ledger_journal_zero_sum ON ledger_journal;
DROP FUNCTION IF EXISTS ledger_journal_zero_sum();
DROP TRIGGER IF EXISTS ledger_entry_statement_checks ON ledger_entry;
DROP FUNCTION IF EXISTS ledger_entry_statement_checks();
ALTER TABLE ledger_journal DROP COLUMN IF EXISTS created_txid;
DROP TRIGGER IF EXISTS ledger_journal_append_only ON ledger_journal;
DROP TRIGGER IF EXISTS ledger_entry_append_only ON ledger_entry;
DROP FUNCTION IF EXISTS ledger_forbid_change();
"""

# The house manual queries ledger_entries(account, amount_u, ref_type, ref_id, ts) verbatim.
VIEW_FORWARD = """
CREATE VIEW ledger_entries AS
SELECT e.id AS id, a.name AS account, e.currency AS currency, e.amount_u AS amount_u,
       j.type AS ref_type, j.reference AS ref_id, e.created_at AS ts, e.journal_id AS journal_id,
       e.account_id AS account_id
FROM ledger_entry e
JOIN ledger_account a ON a.id = e.account_id
JOIN ledger_journal j ON j.id = e.journal_id
"""
VIEW_BACKWARD = "DROP VIEW IF EXISTS ledger_entries"


def forward(apps, schema_editor):
    schema_editor.execute(PG_FORWARD, params=None)
    schema_editor.execute(VIEW_FORWARD)


def backward(apps, schema_editor):
    schema_editor.execute(VIEW_BACKWARD)
    schema_editor.execute(PG_BACKWARD, params=None)


class Migration(migrations.Migration):
    dependencies = [("ledger", "0001_initial")]
    operations = [migrations.RunPython(forward, backward)]
