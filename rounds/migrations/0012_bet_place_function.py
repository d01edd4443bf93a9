"""A bet in one round trip: `rounds_bet_place`, called once by `rounds.betting.bet_place` inside its transaction.

One call does, in order, what the bet used to do in about twenty statements and three transactions:

1. The Idempotency-Key, when the request sent one (`p_key` not NULL): the key's `ops_idempotencykey` row is
   inserted (`in_progress`) first, so a concurrent request with the same key waits on the unique index
   (`idempotency_key_unique_per_user`) until this transaction ends, then finds the row. An existing row of
   the same request (same scope, same fingerprint or the pre-RFC 8785 one) that is completed answers
   `replay` with its stored status and body; another request's answers `key_reused` (422, nothing runs). A
   row left `in_progress` by a request of `ops.idempotency.idempotent_call` (the path of every other POST)
   is taken over only if no live request holds its advisory lock (`p_lock_id`, the same id that path
   locks), else `in_progress` (409): the same rules as `idempotent_call`.
2. The `betting_paused` switch (`ops_switch`): `paused`.
3. The round held shared as `rounds.lock_objects` describes (the shared form of `round_lock_row`'s locks): the
   transaction-level advisory lock `pg_advisory_xact_lock_shared(hashtext('rounds:bets'), hashtext(code))`, then the round's
   row `FOR SHARE`: `round_not_found`; not OPEN or `p_now` (the caller's `rounds.clock.now()`) at or past
   its lock time: `round_locked`; a stake under its minimum: `stake_too_small`.
4. The writes, in a block that rolls back as a whole on a refusal (a plpgsql exception block: one
   subtransaction), so a refused bet leaves nothing behind, not even an account opened for it:
   the player's available account through the ledger's `ledger_account_open`; the bet row (its leaf computed
   by the caller: every field of the public record is known before the call), `ON CONFLICT` of
   `rounds_bet_one_per_player_per_round` answering `already_bet` (a concurrent bet of the same player waits
   on the index and then meets it); the stripe account (`rounds.accounts` naming); the posting through the
   ledger's own `ledger_post`, with the arguments `ledger.services.transfer` gives it (type `bet`, reference
   `bet:<bet_id>`, the caller's metadata and actor, legs player -stake / stripe +stake, and the fingerprint of
   `ledger.services._fingerprint`, computed here as `ledger_post_staged` computes it), its refusals answered
   as they are (`insufficient_funds` with the ledger's detail, ...); then the stripe's figures
   (`rounds_poolstripe` upsert, `rounds.pools`).
5. The key's row, completed with the 201 body (the caller's, with the round's currency and status).

A refusal returns its status and detail (never raises), so the caller's transaction stays usable: with a key,
the caller stores the refusal's problem document in the key's row (as `idempotent_call` stores a 4xx refusal)
before the one commit, or rolls the whole transaction back, key and all, for the pause (a 503, which
`idempotent_call` does not keep either). Nothing of the ledger is named in SQL here: only its two functions are called.

SECURITY INVOKER, deliberately: the function runs with the application role's own rights, which already
cover every table it writes (`rounds_bet`, `rounds_poolstripe`, `ops_idempotencykey`) and reads
(`rounds_round`, `ops_switch`), and which reach the ledger's tables only through the ledger's SECURITY
DEFINER functions. As a definer function it would write the rounds' and the kernel's tables with the
owner's rights: an elevation nothing needs, and one more door to audit. The red-line triggers apply the same
either way. Its `search_path` is pinned like the ledger's helpers'. EXECUTE: `setup_db_roles` grants the
application role every function of the schema.
"""

from django.db import migrations

SIGNATURE = (
    "rounds_bet_place(varchar, bigint, varchar, bigint, uuid, timestamptz, bytea, varchar, varchar, integer,"
    " varchar, varchar, jsonb, varchar, varchar, varchar, varchar, bigint, jsonb)"
)

FORWARD = r"""
CREATE OR REPLACE FUNCTION rounds_bet_place(
    p_code varchar, p_player_id bigint, p_side varchar, p_stake_u bigint, p_bet_id uuid, p_now timestamptz,
    p_leaf bytea, p_flow_id varchar,
    p_player_account varchar, p_stripe integer, p_stripe_account varchar,
    p_actor_label varchar, p_metadata jsonb,
    p_key varchar, p_scope varchar, p_request_hash varchar, p_legacy_hash varchar, p_lock_id bigint,
    p_body jsonb,
    OUT status text, OUT detail jsonb, OUT key_id bigint
) LANGUAGE plpgsql SECURITY INVOKER SET search_path = pg_catalog, public, pg_temp AS $$
DECLARE
    found_key record;
    round_row record;
    player_account_id bigint;
    stripe_account_id bigint;
    legs text[];
    posting record;
BEGIN
    -- 1. The Idempotency-Key: reserve it, or answer from its row.
    IF p_key IS NOT NULL THEN
        INSERT INTO ops_idempotencykey AS k (user_id, key, scope, request_hash, state, created_at)
            VALUES (p_player_id, p_key, p_scope, p_request_hash, 'in_progress', clock_timestamp())
            ON CONFLICT (user_id, key) DO NOTHING
            RETURNING k.id INTO key_id;
        IF key_id IS NULL THEN
            SELECT k.id, k.scope, k.request_hash, k.state, k.response_status, k.response_body INTO found_key
                FROM ops_idempotencykey k WHERE k.user_id = p_player_id AND k.key = p_key;
            IF NOT FOUND THEN  -- released meanwhile by idempotent_call (a 5xx of that path): ask again
                status := 'in_progress';
                RETURN;
            END IF;
            IF found_key.scope <> p_scope
               OR found_key.request_hash NOT IN (p_request_hash, coalesce(p_legacy_hash, p_request_hash)) THEN
                status := 'key_reused';
                RETURN;
            END IF;
            IF found_key.state = 'completed' THEN
                status := 'replay';
                detail := jsonb_build_object('status', found_key.response_status, 'body', found_key.response_body);
                RETURN;
            END IF;
            -- In progress under `idempotent_call`: run it only if nobody alive holds its lock (it died).
            IF NOT pg_try_advisory_xact_lock(p_lock_id) THEN
                status := 'in_progress';
                RETURN;
            END IF;
            key_id := found_key.id;
            detail := jsonb_build_object('recovered', true);
        END IF;
    END IF;

    -- 2. The operators' pause.
    IF EXISTS (SELECT 1 FROM ops_switch s WHERE s.name = 'betting_paused' AND s.on) THEN
        status := 'paused';
        RETURN;
    END IF;

    -- 3. The round, held shared (rounds.lock_objects); its status, lock time, minimum.
    PERFORM pg_advisory_xact_lock_shared(hashtext('rounds:bets'), hashtext(p_code));
    SELECT r.id, r.status, r.lock_at, r.min_stake_u, r.currency INTO round_row
        FROM rounds_round r WHERE r.code = p_code FOR SHARE;
    IF NOT FOUND THEN
        status := 'round_not_found';
        RETURN;
    END IF;
    IF round_row.status <> 'OPEN' OR p_now >= round_row.lock_at THEN
        status := 'round_locked';
        detail := jsonb_build_object('lock_at', to_char(round_row.lock_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS'));
        RETURN;
    END IF;
    IF p_stake_u < round_row.min_stake_u THEN
        status := 'stake_too_small';
        detail := jsonb_build_object('min_stake_u', round_row.min_stake_u);
        RETURN;
    END IF;

    -- 4. The writes, all or nothing.
    BEGIN
        SELECT a.id INTO player_account_id
            FROM ledger_account_open(p_player_account, round_row.currency, 'user_available', p_player_id, false) a;
        INSERT INTO rounds_bet (round_id, player_id, account_id, bet_id, side, stake_u, placed_at, payout_u, leaf, flow_id)
            VALUES (round_row.id, p_player_id, player_account_id, p_bet_id, p_side, p_stake_u, p_now, NULL, p_leaf,
                    p_flow_id)
            ON CONFLICT ON CONSTRAINT rounds_bet_one_per_player_per_round DO NOTHING;
        IF NOT FOUND THEN
            status := 'already_bet';
            RAISE EXCEPTION 'refused' USING ERRCODE = 'RB001';
        END IF;
        SELECT a.id INTO stripe_account_id
            FROM ledger_account_open(p_stripe_account, round_row.currency, 'round_pool', NULL, false) a;
        -- ledger.services._fingerprint: sha256 of 'bet||' and the legs' 'account:amount', sorted, comma-joined.
        legs := ARRAY[player_account_id || ':' || -p_stake_u, stripe_account_id || ':' || p_stake_u];
        IF legs[2] COLLATE "C" < legs[1] COLLATE "C" THEN
            legs := ARRAY[legs[2], legs[1]];
        END IF;
        SELECT l.status, l.detail INTO posting FROM ledger_post(
            'bet', 'bet:' || p_bet_id::text,
            encode(sha256(convert_to('bet||' || legs[1] || ',' || legs[2], 'UTF8')), 'hex'),
            p_metadata, p_player_id, p_actor_label, NULL,
            ARRAY[player_account_id, stripe_account_id], ARRAY[round_row.currency, round_row.currency]::varchar[],
            ARRAY[-p_stake_u, p_stake_u]) l;
        IF posting.status <> 'posted' THEN
            status := posting.status;
            detail := posting.detail;
            RAISE EXCEPTION 'refused' USING ERRCODE = 'RB001';
        END IF;
        INSERT INTO rounds_poolstripe AS s (round_id, stripe, up_pool_u, down_pool_u, up_bets, down_bets)
            VALUES (round_row.id, p_stripe,
                    CASE WHEN p_side = 'UP' THEN p_stake_u ELSE 0 END, CASE WHEN p_side = 'UP' THEN 0 ELSE p_stake_u END,
                    CASE WHEN p_side = 'UP' THEN 1 ELSE 0 END, CASE WHEN p_side = 'UP' THEN 0 ELSE 1 END)
            ON CONFLICT (round_id, stripe) DO UPDATE SET
                up_pool_u = s.up_pool_u + excluded.up_pool_u, down_pool_u = s.down_pool_u + excluded.down_pool_u,
                up_bets = s.up_bets + excluded.up_bets, down_bets = s.down_bets + excluded.down_bets;
    EXCEPTION WHEN SQLSTATE 'RB001' THEN
        RETURN;  -- status and detail say which refusal; every write of the block is rolled back
    END;

    -- 5. Placed: the answer, stored under the key.
    status := 'placed';
    detail := coalesce(detail, '{}'::jsonb)
              || jsonb_build_object('currency', round_row.currency, 'round_status', round_row.status);
    IF key_id IS NOT NULL THEN
        UPDATE ops_idempotencykey k SET state = 'completed', response_status = 201,
                                        response_body = p_body || jsonb_build_object('currency', round_row.currency,
                                                                                     'round_status', round_row.status),
                                        completed_at = clock_timestamp()
            WHERE k.id = key_id;
    END IF;
END $$;
"""

BACKWARD = f"DROP FUNCTION IF EXISTS {SIGNATURE};"


class Migration(migrations.Migration):
    dependencies = [
        ("ledger", "0009_definer_functions"),
        ("ops", "0007_red_line_content"),
        ("rounds", "0011_red_line_content"),
    ]

    operations = [migrations.RunSQL(FORWARD, BACKWARD)]
