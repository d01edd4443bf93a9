"""The entries' statement checks look up each journal and each (account, currency) once, not once per entry.

The same two refusals as migration 0002 (an entry added to a journal another transaction created; an
entry whose currency is not its account's), over the distinct keys of the inserted rows: a round's
settlement inserts half a million entries of one journal, which was half a million probes of
ledger_journal for one row.
"""

from django.db import migrations

FUNCTION = r"""
CREATE OR REPLACE FUNCTION ledger_entry_statement_checks() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM (SELECT DISTINCT journal_id FROM new_entries) n
               JOIN ledger_journal j ON j.id = n.journal_id
               WHERE j.created_txid <> txid_current()) THEN
        RAISE EXCEPTION 'entries may only be added in the transaction that creates their journal'
            USING ERRCODE = 'restrict_violation';
    END IF;
    IF EXISTS (SELECT 1 FROM (SELECT DISTINCT account_id, currency FROM new_entries) n
               JOIN ledger_account a ON a.id = n.account_id
               WHERE a.currency <> n.currency) THEN
        RAISE EXCEPTION 'an entry''s currency must be its account''s currency'
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END $$;
"""

PREVIOUS = r"""
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
"""


def forward(apps, schema_editor):
    schema_editor.execute(FUNCTION, params=None)


def backward(apps, schema_editor):
    schema_editor.execute(PREVIOUS, params=None)


class Migration(migrations.Migration):
    dependencies = [("ledger", "0006_account_fillfactor")]
    operations = [migrations.RunPython(forward, backward)]
