"""A bet behind the red line by content: its stake never changes, its payout is set once, while its round settles.

- Its stake, side, account and player never change, and its payout, once set, never changes again nor
  is negative (the row trigger, `ops.db_guard.red_line_operation`; its WHEN holds the whole test, so a
  settlement's million payouts, NULL to a value, call no function per row).
- A payout is set only while the bet's round is LOCKED (being settled, `rounds.settlement`): one statement
  trigger per UPDATE checks every changed payout with one set-based query over the statement's
  transition tables.

No setting lets anything else through (see `ops/db_guard.py` and docs/red-line.md).
"""

from django.db import migrations

from ops.db_guard import red_line_operation, red_line_sql_operation

FORWARD = r"""
CREATE OR REPLACE FUNCTION rounds_bet_red_line_payouts() RETURNS trigger LANGUAGE plpgsql SET search_path = pg_catalog, public, pg_temp AS $$
DECLARE
    offending record;
BEGIN
    SELECT r.code, r.status INTO offending
        FROM (SELECT DISTINCT n.round_id FROM new_bets n JOIN old_bets o ON o.id = n.id
              WHERE o.payout_u IS DISTINCT FROM n.payout_u) c
        JOIN rounds_round r ON r.id = c.round_id
        WHERE r.status <> 'LOCKED'
        LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'red line: UPDATE of rounds_bet refused; payouts are set only while their round is settled '
                        '(round % is %)', offending.code, offending.status
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NULL;
END $$;

DROP TRIGGER IF EXISTS rounds_bet_red_line_payouts ON rounds_bet;
CREATE TRIGGER rounds_bet_red_line_payouts AFTER UPDATE ON rounds_bet
    REFERENCING OLD TABLE AS old_bets NEW TABLE AS new_bets
    FOR EACH STATEMENT EXECUTE FUNCTION rounds_bet_red_line_payouts();
"""

BACKWARD = r"""
DROP TRIGGER IF EXISTS rounds_bet_red_line_payouts ON rounds_bet;
DROP FUNCTION IF EXISTS rounds_bet_red_line_payouts();
"""


class Migration(migrations.Migration):
    dependencies = [("ops", "0007_red_line_content"), ("rounds", "0010_red_line_when_setting")]

    operations = [
        red_line_operation(
            table="rounds_bet",
            what="a bet's stake, side, account, player and round, and its payout once set",
            columns=("stake_u", "side", "account_id", "player_id", "round_id"),
            refused_also="(OLD.payout_u IS NOT NULL AND OLD.payout_u IS DISTINCT FROM NEW.payout_u) OR NEW.payout_u < 0",
            watched=("payout_u",),
            recreate=True,
        ),
        red_line_sql_operation(forward=FORWARD, backward=BACKWARD),
    ]
