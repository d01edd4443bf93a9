"""Postings in one round trip: `ledger_post` (one journal) and `ledger_post_batch` (many).

Each function does what `ledger.services.journal_post` needs, inside the database:
lock every account the legs touch (SELECT ... FOR UPDATE in ascending id order, as every posting
does, so postings never deadlock each other), check that each
account exists and is in the leg's currency, recognise a replay by reference (same fingerprint: the
existing journal; other contents: refused), refuse an overdraft of an account that may not go
negative, then insert the journal and its entries and move the stored balances.

A refusal is returned, not raised: the function writes nothing before its checks pass, so the
transaction stays usable and the service raises the matching LedgerError. The deferred zero-sum
trigger, the entry checks and the CHECK on balances (migration 0002) still guard every row written.

The batch posts its journals in order, all or nothing: posting k is checked against the balances left
by postings 1..k-1 (a running sum per account), exactly as posting them one by one would, and the
first refusal refuses the whole batch. A reference taken by a concurrent transaction between the check
and the insert (the unique index makes the insert wait for it) rolls back the batch's writes to an
internal savepoint and checks again; the locks on the accounts are kept.
"""

from django.db import migrations

PG_FORWARD = r"""
CREATE OR REPLACE FUNCTION ledger_posting_existing(
    p_reference varchar, p_fingerprint varchar, p_reverses_id bigint,
    OUT status text, OUT journal_id bigint
) LANGUAGE plpgsql AS $$
DECLARE
    found_id bigint;
    found_fingerprint varchar;
BEGIN
    SELECT j.id, j.fingerprint INTO found_id, found_fingerprint
        FROM ledger_journal j WHERE j.reference = p_reference;
    IF FOUND THEN
        status := CASE WHEN found_fingerprint = p_fingerprint THEN 'replay' ELSE 'reference_conflict' END;
        journal_id := found_id;
    ELSIF p_reverses_id IS NOT NULL
          AND EXISTS (SELECT 1 FROM ledger_journal j WHERE j.reverses_id = p_reverses_id) THEN
        status := 'already_reversed';
    END IF;
END $$;

CREATE OR REPLACE FUNCTION ledger_post(
    p_type varchar, p_reference varchar, p_fingerprint varchar, p_metadata jsonb,
    p_actor_id bigint, p_actor_label varchar, p_reverses_id bigint,
    p_account_ids bigint[], p_currencies varchar[], p_amounts bigint[],
    OUT status text, OUT journal_id bigint, OUT created_at timestamptz, OUT detail jsonb
) LANGUAGE plpgsql AS $$
DECLARE
    -- The locked accounts (ascending id), and per account the sum of its legs.
    ids bigint[];
    names varchar[];
    currencies varchar[];
    balances bigint[];
    may_go_negative boolean[];
    deltas numeric[];
    first_seen integer[] := '{}';  -- account positions in order of first appearance among the legs
    pos integer;
    leg integer;
    existing record;
    new_id bigint;
    new_created_at timestamptz;
BEGIN
    SELECT array_agg(a.id), array_agg(a.name), array_agg(a.currency), array_agg(a.balance_u),
           array_agg(a.allow_negative)
        INTO ids, names, currencies, balances, may_go_negative
        FROM (SELECT l.id, l.name, l.currency, l.balance_u, l.allow_negative FROM ledger_account l
              WHERE l.id = ANY (p_account_ids) ORDER BY l.id FOR UPDATE) a;
    deltas := array_fill(0::numeric, ARRAY[coalesce(cardinality(ids), 0)]);

    -- The checks in the order the portable path makes them: per leg an unknown account or another
    -- currency; then per account, in order of first appearance, an overdraft.
    FOR leg IN 1 .. cardinality(p_account_ids) LOOP
        pos := array_position(ids, p_account_ids[leg]);
        IF pos IS NULL THEN
            status := 'unknown_account';
            detail := jsonb_build_object('account_id', p_account_ids[leg]);
            RETURN;
        END IF;
        IF currencies[pos] <> p_currencies[leg] THEN
            status := 'currency_mismatch';
            detail := jsonb_build_object('name', names[pos], 'currency', p_currencies[leg]);
            RETURN;
        END IF;
        IF NOT pos = ANY (first_seen) THEN
            first_seen := first_seen || pos;
        END IF;
        deltas[pos] := deltas[pos] + p_amounts[leg];
    END LOOP;
    FOREACH pos IN ARRAY first_seen LOOP
        IF NOT may_go_negative[pos] AND balances[pos] + deltas[pos] < 0 THEN
            -- A reference is posted at most once: if it was, this is a replay (or a conflict), not an overdraft.
            SELECT e.status, e.journal_id INTO existing
                FROM ledger_posting_existing(p_reference, p_fingerprint, p_reverses_id) e;
            status := coalesce(existing.status, 'insufficient_funds');
            journal_id := existing.journal_id;
            detail := jsonb_build_object('name', names[pos], 'currency', currencies[pos],
                                         'balance_u', balances[pos], 'delta_u', deltas[pos]);
            RETURN;
        END IF;
    END LOOP;

    INSERT INTO ledger_journal AS j (type, reference, fingerprint, metadata, actor_id, actor_label, reverses_id)
        VALUES (p_type, p_reference, p_fingerprint, p_metadata, p_actor_id, p_actor_label, p_reverses_id)
        ON CONFLICT DO NOTHING
        RETURNING j.id, j.created_at INTO new_id, new_created_at;
    IF NOT FOUND THEN
        -- The reference (or the reversal of the same journal) is taken; nothing was written.
        SELECT e.status, e.journal_id INTO existing
            FROM ledger_posting_existing(p_reference, p_fingerprint, p_reverses_id) e;
        IF existing.status IS NULL THEN
            RAISE EXCEPTION 'journal % conflicts with a row that cannot be found', p_reference
                USING ERRCODE = 'internal_error';
        END IF;
        status := existing.status;
        journal_id := existing.journal_id;
        RETURN;
    END IF;

    INSERT INTO ledger_entry (journal_id, account_id, currency, amount_u)
        SELECT new_id, l.account_id, l.currency, l.amount_u
        FROM unnest(p_account_ids, p_currencies, p_amounts) AS l(account_id, currency, amount_u);
    UPDATE ledger_account a SET balance_u = a.balance_u + d.delta::bigint
        FROM unnest(ids, deltas) AS d(id, delta)
        WHERE a.id = d.id AND d.delta <> 0;
    status := 'posted';
    journal_id := new_id;
    created_at := new_created_at;
END $$;

CREATE OR REPLACE FUNCTION ledger_post_batch(
    p_types varchar[], p_references varchar[], p_fingerprints varchar[], p_metadata jsonb,
    p_actor_id bigint, p_actor_label varchar,
    p_leg_postings integer[], p_account_ids bigint[], p_currencies varchar[], p_amounts bigint[]
) RETURNS TABLE (posting integer, status text, journal_id bigint, created_at timestamptz, detail jsonb)
LANGUAGE plpgsql AS $$
DECLARE
    refusal record;
    replays integer[];
    conflict integer;
    new_postings integer[];
    new_ids bigint[];
    new_created_at timestamptz[];
    attempt integer := 0;
BEGIN
    IF (SELECT count(DISTINCT r) FROM unnest(p_references) AS r) <> cardinality(p_references) THEN
        RETURN QUERY SELECT NULL::integer, 'duplicate_reference'::text, NULL::bigint, NULL::timestamptz,
                            NULL::jsonb;
        RETURN;
    END IF;

    PERFORM 1 FROM ledger_account a WHERE a.id = ANY (p_account_ids) ORDER BY a.id FOR UPDATE;

    SELECT l.posting AS posting,
           CASE WHEN a.id IS NULL THEN 'unknown_account' ELSE 'currency_mismatch' END AS status,
           jsonb_build_object('account_id', l.account_id, 'name', a.name, 'currency', l.currency) AS detail
        INTO refusal
        FROM unnest(p_leg_postings, p_account_ids, p_currencies) WITH ORDINALITY AS l(posting, account_id, currency, n)
        LEFT JOIN ledger_account a ON a.id = l.account_id
        WHERE a.id IS NULL OR a.currency <> l.currency
        ORDER BY l.n LIMIT 1;
    IF FOUND THEN
        RETURN QUERY SELECT refusal.posting, refusal.status, NULL::bigint, NULL::timestamptz, refusal.detail;
        RETURN;
    END IF;

    LOOP
        attempt := attempt + 1;
        BEGIN
            SELECT coalesce(array_agg(p.n::integer) FILTER (WHERE j.fingerprint = p.fingerprint), '{}'),
                   min(p.n::integer) FILTER (WHERE j.fingerprint <> p.fingerprint)
                INTO replays, conflict
                FROM unnest(p_references, p_fingerprints) WITH ORDINALITY AS p(reference, fingerprint, n)
                JOIN ledger_journal j ON j.reference = p.reference;
            IF conflict IS NOT NULL THEN
                RETURN QUERY SELECT conflict, 'reference_conflict'::text, NULL::bigint, NULL::timestamptz,
                                    NULL::jsonb;
                RETURN;
            END IF;

            -- Posting k sees the balances postings 1..k-1 left: a running sum per account, in posting order.
            SELECT s.posting AS posting,
                   jsonb_build_object('name', s.name, 'currency', s.currency, 'balance_u', s.running - s.delta,
                                      'delta_u', s.delta) AS detail
                INTO refusal
                FROM (SELECT d.posting, d.first, d.delta, a.name, a.currency, a.allow_negative,
                             a.balance_u + sum(d.delta) OVER (PARTITION BY d.account_id ORDER BY d.posting) AS running
                      FROM (SELECT l.posting, l.account_id, sum(l.amount_u) AS delta, min(l.n) AS first
                            FROM unnest(p_leg_postings, p_account_ids, p_amounts)
                                 WITH ORDINALITY AS l(posting, account_id, amount_u, n)
                            WHERE l.posting <> ALL (replays)
                            GROUP BY l.posting, l.account_id) d
                      JOIN ledger_account a ON a.id = d.account_id) s
                WHERE NOT s.allow_negative AND s.running < 0
                ORDER BY s.posting, s.first LIMIT 1;
            IF FOUND THEN
                RETURN QUERY SELECT refusal.posting, 'insufficient_funds'::text, NULL::bigint, NULL::timestamptz,
                                    refusal.detail;
                RETURN;
            END IF;

            WITH inserted AS (
                INSERT INTO ledger_journal AS j (type, reference, fingerprint, metadata, actor_id, actor_label)
                    SELECT p.type, p.reference, p.fingerprint, p_metadata -> (p.n::integer - 1),
                           p_actor_id, p_actor_label
                    FROM unnest(p_types, p_references, p_fingerprints) WITH ORDINALITY AS p(type, reference, fingerprint, n)
                    WHERE p.n <> ALL (replays)
                    ORDER BY p.n
                    ON CONFLICT (reference) DO NOTHING
                    RETURNING j.id, j.reference, j.created_at
            )
            SELECT coalesce(array_agg(p.n::integer ORDER BY p.n), '{}'),
                   coalesce(array_agg(i.id ORDER BY p.n), '{}'),
                   coalesce(array_agg(i.created_at ORDER BY p.n), '{}')
                INTO new_postings, new_ids, new_created_at
                FROM inserted i JOIN unnest(p_references) WITH ORDINALITY AS p(reference, n) ON p.reference = i.reference;
            IF cardinality(new_postings) + cardinality(replays) < cardinality(p_references) THEN
                -- A concurrent transaction took one of these references after the check: look again.
                RAISE EXCEPTION 'a reference of the batch was taken meanwhile' USING ERRCODE = 'LR001';
            END IF;

            INSERT INTO ledger_entry (journal_id, account_id, currency, amount_u)
                SELECT m.id, l.account_id, l.currency, l.amount_u
                FROM unnest(p_leg_postings, p_account_ids, p_currencies, p_amounts)
                     WITH ORDINALITY AS l(posting, account_id, currency, amount_u, n)
                JOIN unnest(new_postings, new_ids) AS m(posting, id) ON m.posting = l.posting
                ORDER BY l.n;
            UPDATE ledger_account a SET balance_u = a.balance_u + d.delta
                FROM (SELECT l.account_id, sum(l.amount_u)::bigint AS delta
                      FROM unnest(p_leg_postings, p_account_ids, p_amounts) AS l(posting, account_id, amount_u)
                      WHERE l.posting = ANY (new_postings)
                      GROUP BY l.account_id) d
                WHERE a.id = d.account_id AND d.delta <> 0;

            RETURN QUERY
                SELECT p.n::integer,
                       CASE WHEN m.id IS NULL THEN 'replay' ELSE 'posted' END,
                       coalesce(m.id, j.id), m.created_at, NULL::jsonb
                FROM unnest(p_references) WITH ORDINALITY AS p(reference, n)
                LEFT JOIN unnest(new_postings, new_ids, new_created_at) AS m(posting, id, created_at)
                    ON m.posting = p.n
                LEFT JOIN ledger_journal j ON m.id IS NULL AND j.reference = p.reference
                ORDER BY p.n;
            RETURN;
        EXCEPTION WHEN SQLSTATE 'LR001' THEN
            IF attempt >= 5 THEN
                RAISE EXCEPTION 'the references of a ledger batch kept being taken by concurrent postings'
                    USING ERRCODE = 'serialization_failure';
            END IF;
        END;
    END LOOP;
END $$;
"""

PG_BACKWARD = r"""
DROP FUNCTION IF EXISTS ledger_post_batch(varchar[], varchar[], varchar[], jsonb, bigint, varchar, integer[],
                                          bigint[], varchar[], bigint[]);
DROP FUNCTION IF EXISTS ledger_post(varchar, varchar, varchar, jsonb, bigint, varchar, bigint, bigint[], varchar[],
                                    bigint[]);
DROP FUNCTION IF EXISTS ledger_posting_existing(varchar, varchar, bigint);
"""


def forward(apps, schema_editor):
    schema_editor.execute(PG_FORWARD, params=None)


def backward(apps, schema_editor):
    schema_editor.execute(PG_BACKWARD, params=None)


class Migration(migrations.Migration):
    dependencies = [("ledger", "0004_maker_checker")]
    operations = [migrations.RunPython(forward, backward)]
