"""The ledger's bulk door takes rows: the staging table `ledger_posting_leg` and `ledger_post_staged`.

A caller with more legs than belong in Python (a round's payouts) stages them with its own set-based
`INSERT ... SELECT` into `ledger_posting_leg`, then calls `ledger_post_staged` once. The function posts
the rows the current transaction staged under one reference with the rules of `ledger_post` (migration
0005), inside the database:

- the legs' fingerprint is `ledger.services._fingerprint`'s (sha256 of `type||` and the sorted
  `account:amount` strings), so a replay of the same reference with the same legs returns the existing
  journal and with other legs is refused as a reference conflict, as for `ledger_post`;
- refusals are returned, not raised, and write nothing: `invalid_amount` (a zero leg), `unbalanced`
  (fewer than two legs, or not summing to zero), `unknown_account`, `currency_mismatch`,
  `insufficient_funds`, `reference_conflict` (the service raises the matching LedgerError);
- the accounts are locked in ascending id order (SELECT ... FOR UPDATE OF, as every posting does), the
  currency and the overdraft are checked on the locked rows, then the journal, the entries and the
  balances are written; a posting touching a large share of the accounts is planned with hash joins
  around the lock and the balances (as `journal_post_bulk` was), the planner restored after;
- the staged rows of the reference are deleted whatever the answer: they never outlive the transaction.
  Only rows staged by the current transaction count (`created_txid`, like `ledger_journal.created_txid`):
  a row some other transaction staged and committed is deleted, never posted.

`SECURITY DEFINER SET search_path = pg_catalog, public`: it runs as the tables' owner with a pinned
search path, so the application role needs no write privilege on the ledger's tables, only EXECUTE and,
on `ledger_posting_leg`, SELECT, INSERT and DELETE. The table is UNLOGGED: its rows never outlive a
transaction, so they need no WAL.
"""

from django.db import migrations, models

FORWARD = r"""
ALTER TABLE ledger_posting_leg ADD COLUMN created_txid bigint NOT NULL DEFAULT txid_current();
ALTER TABLE ledger_posting_leg SET UNLOGGED;

CREATE OR REPLACE FUNCTION ledger_post_staged(
    p_type varchar, p_reference varchar, p_currency varchar, p_metadata jsonb,
    p_actor_id bigint, p_actor_label varchar,
    OUT status text, OUT journal_id bigint, OUT created_at timestamptz, OUT detail jsonb
) LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    txid bigint := txid_current();
    legs bigint;
    total numeric;
    zeros bigint;
    legs_fingerprint varchar;
    large boolean;
    previous_nestloop text;
    matched bigint;
    foreign_id bigint;
    overdrawn_id bigint;
    ids bigint[];
    deltas bigint[];
    existing record;
    found_row record;
    new_id bigint;
    new_created_at timestamptz;
BEGIN
    <<post>>
    BEGIN
        -- The legs as `journal_post` validates them, and their fingerprint (ledger.services._fingerprint).
        SELECT count(*), coalesce(sum(s.amount_u), 0), count(*) FILTER (WHERE s.amount_u = 0),
               encode(sha256(convert_to(p_type || '||' || coalesce(
                   string_agg(s.account_id || ':' || s.amount_u, ','
                              ORDER BY (s.account_id || ':' || s.amount_u) COLLATE "C"), ''), 'UTF8')), 'hex')
            INTO legs, total, zeros, legs_fingerprint
            FROM ledger_posting_leg s
            WHERE s.posting_reference = p_reference AND s.created_txid = txid;
        IF zeros > 0 THEN
            status := 'invalid_amount';
            detail := jsonb_build_object('zero_legs', zeros);
            EXIT post;
        END IF;
        IF legs < 2 OR total <> 0 THEN
            status := 'unbalanced';
            detail := jsonb_build_object('legs', legs, 'total_u', total);
            EXIT post;
        END IF;

        -- A reference is posted at most once: the same legs are a replay, others a conflict.
        SELECT e.status, e.journal_id INTO existing FROM ledger_posting_existing(p_reference, legs_fingerprint, NULL) e;
        IF existing.status IS NOT NULL THEN
            status := existing.status;
            journal_id := existing.journal_id;
            EXIT post;
        END IF;

        -- Lock the accounts (ascending id) and check them on the locked rows; keep each one's delta.
        SELECT reltuples INTO found_row FROM pg_class WHERE oid = 'ledger_account'::regclass;
        large := legs >= 10000 AND legs * 10 >= found_row.reltuples;
        IF large THEN
            previous_nestloop := current_setting('enable_nestloop');
            PERFORM set_config('enable_nestloop', 'off', true);
        END IF;
        SELECT coalesce(sum(x.legs), 0),
               min(x.id) FILTER (WHERE x.currency <> p_currency),
               min(x.id) FILTER (WHERE NOT x.allow_negative AND x.balance_u + x.delta < 0),
               coalesce(array_agg(x.id) FILTER (WHERE x.delta <> 0), '{}'),
               coalesce(array_agg(x.delta::bigint) FILTER (WHERE x.delta <> 0), '{}')
            INTO matched, foreign_id, overdrawn_id, ids, deltas
            FROM (SELECT a.id, a.currency, a.balance_u, a.allow_negative, d.delta, d.legs
                  FROM ledger_account a
                  JOIN (SELECT s.account_id, sum(s.amount_u) AS delta, count(*) AS legs
                        FROM ledger_posting_leg s
                        WHERE s.posting_reference = p_reference AND s.created_txid = txid
                        GROUP BY s.account_id) d ON d.account_id = a.id
                  ORDER BY a.id FOR UPDATE OF a) x;
        IF large THEN
            PERFORM set_config('enable_nestloop', previous_nestloop, true);
        END IF;
        IF matched < legs THEN
            status := 'unknown_account';
            SELECT s.account_id INTO found_row FROM ledger_posting_leg s
                WHERE s.posting_reference = p_reference AND s.created_txid = txid
                  AND NOT EXISTS (SELECT 1 FROM ledger_account a WHERE a.id = s.account_id)
                ORDER BY s.id LIMIT 1;
            detail := jsonb_build_object('account_id', found_row.account_id);
            EXIT post;
        END IF;
        IF foreign_id IS NOT NULL THEN
            status := 'currency_mismatch';
            SELECT a.name INTO found_row FROM ledger_account a WHERE a.id = foreign_id;
            detail := jsonb_build_object('name', found_row.name, 'currency', p_currency);
            EXIT post;
        END IF;
        IF overdrawn_id IS NOT NULL THEN
            status := 'insufficient_funds';
            SELECT a.name, a.currency, a.balance_u, deltas[array_position(ids, a.id)] AS delta_u INTO found_row
                FROM ledger_account a WHERE a.id = overdrawn_id;
            detail := jsonb_build_object('name', found_row.name, 'currency', found_row.currency,
                                         'balance_u', found_row.balance_u, 'delta_u', found_row.delta_u);
            EXIT post;
        END IF;

        INSERT INTO ledger_journal AS j (type, reference, fingerprint, metadata, actor_id, actor_label)
            VALUES (p_type, p_reference, legs_fingerprint, p_metadata, p_actor_id, p_actor_label)
            ON CONFLICT DO NOTHING
            RETURNING j.id, j.created_at INTO new_id, new_created_at;
        IF NOT FOUND THEN
            -- A concurrent transaction posted the reference meanwhile; nothing was written.
            SELECT e.status, e.journal_id INTO existing
                FROM ledger_posting_existing(p_reference, legs_fingerprint, NULL) e;
            IF existing.status IS NULL THEN
                RAISE EXCEPTION 'journal % conflicts with a row that cannot be found', p_reference
                    USING ERRCODE = 'internal_error';
            END IF;
            status := existing.status;
            journal_id := existing.journal_id;
            EXIT post;
        END IF;

        INSERT INTO ledger_entry (journal_id, account_id, currency, amount_u)
            SELECT new_id, s.account_id, p_currency, s.amount_u
            FROM ledger_posting_leg s
            WHERE s.posting_reference = p_reference AND s.created_txid = txid;
        IF large THEN
            PERFORM set_config('enable_nestloop', 'off', true);
        END IF;
        UPDATE ledger_account a SET balance_u = a.balance_u + d.delta
            FROM unnest(ids, deltas) AS d(id, delta)
            WHERE a.id = d.id;
        IF large THEN
            PERFORM set_config('enable_nestloop', previous_nestloop, true);
        END IF;
        status := 'posted';
        journal_id := new_id;
        created_at := new_created_at;
    END;
    DELETE FROM ledger_posting_leg s WHERE s.posting_reference = p_reference;
END $$;
"""

BACKWARD = r"""
DROP FUNCTION IF EXISTS ledger_post_staged(varchar, varchar, varchar, jsonb, bigint, varchar);
"""


def forward(apps, schema_editor):
    schema_editor.execute(FORWARD, params=None)


def backward(apps, schema_editor):
    schema_editor.execute(BACKWARD, params=None)


class Migration(migrations.Migration):
    dependencies = [("ledger", "0007_entry_checks_per_distinct_key")]

    operations = [
        migrations.CreateModel(
            name="PostingLeg",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("posting_reference", models.CharField(max_length=200)),
                ("account_id", models.BigIntegerField()),
                ("amount_u", models.BigIntegerField()),
            ],
            options={
                "db_table": "ledger_posting_leg",
                "indexes": [models.Index(fields=["posting_reference"], name="ledger_posting_leg_reference")],
            },
        ),
        migrations.RunPython(forward, backward),
    ]
