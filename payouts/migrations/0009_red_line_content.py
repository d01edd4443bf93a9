"""A withdrawal behind the red line by content: what never changes, its state machine, and its money in the ledger.

- Its amount, currency and player never change (the row trigger, `ops.db_guard.red_line_operation`).
- It is born `requested`, and its state moves only along `payouts.models.Withdrawal`'s transitions.
- By commit (a deferred constraint trigger) the money its state calls for is in the ledger: `requested`
  its hold (`withdrawal:<id>:hold`, +amount on the player's held account), `paid` its burn
  (`withdrawal:<id>:payout`), `rejected`, `cancelled` and `refunded` its release (`withdrawal:<id>:release`),
  each -amount on the player's held account in the withdrawal's currency. The services post these
  (`payouts.services._burn`, `_release`, `withdrawal_request`) in the transaction that moves the state.

No setting lets anything else through (see `ops/db_guard.py` and docs/red-line.md).
"""

from django.db import migrations

from ops.db_guard import red_line_operation, red_line_sql_operation

TRANSITIONS = (
    ("requested", "approved"),
    ("requested", "rejected"),
    ("requested", "cancelled"),
    ("approved", "payout_submitted"),
    ("payout_submitted", "paid"),
    ("payout_submitted", "payout_failed"),
    ("payout_failed", "paid"),
    ("payout_submitted", "refunded"),
    ("payout_failed", "refunded"),
    ("payout_failed", "payout_submitted"),
)
_LEGAL = ", ".join(f"('{source}', '{target}')" for source, target in TRANSITIONS)

FORWARD = rf"""
CREATE OR REPLACE FUNCTION payouts_withdrawal_red_line_state() RETURNS trigger LANGUAGE plpgsql SET search_path = pg_catalog, public, pg_temp AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        IF NEW.state <> 'requested' THEN
            RAISE EXCEPTION 'red line: INSERT of payouts_withdrawal refused; a withdrawal is born requested, not %',
                            NEW.state USING ERRCODE = 'insufficient_privilege';
        END IF;
    ELSIF (OLD.state, NEW.state) NOT IN ({_LEGAL}) THEN
        RAISE EXCEPTION 'red line: UPDATE of payouts_withdrawal (id %) refused; % -> % is not a transition of a withdrawal',
                        OLD.id, OLD.state, NEW.state USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END $$;

CREATE OR REPLACE FUNCTION payouts_withdrawal_red_line_money() RETURNS trigger LANGUAGE plpgsql SET search_path = pg_catalog, public, pg_temp AS $$
DECLARE
    movement text;
    signed_u bigint;
BEGIN
    IF NEW.state = 'requested' THEN
        movement := 'hold';
        signed_u := NEW.amount_u;
    ELSIF NEW.state = 'paid' THEN
        movement := 'payout';
        signed_u := -NEW.amount_u;
    ELSIF NEW.state IN ('rejected', 'cancelled', 'refunded') THEN
        movement := 'release';
        signed_u := -NEW.amount_u;
    ELSE
        RETURN NULL;
    END IF;
    IF NOT EXISTS (
        SELECT 1 FROM ledger_journal j
        JOIN ledger_entry e ON e.journal_id = j.id
        JOIN ledger_account a ON a.id = e.account_id
        WHERE j.reference = 'withdrawal:' || NEW.id || ':' || movement
          AND a.owner_id = NEW.user_id AND a.kind = 'user_held' AND a.currency = NEW.currency
          AND e.amount_u = signed_u
    ) THEN
        RAISE EXCEPTION 'red line: withdrawal % is % but its % journal (withdrawal:%:%) is not in the ledger',
                        NEW.id, NEW.state, movement, NEW.id, movement USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NULL;
END $$;

DROP TRIGGER IF EXISTS payouts_withdrawal_red_line_born ON payouts_withdrawal;
CREATE TRIGGER payouts_withdrawal_red_line_born BEFORE INSERT ON payouts_withdrawal
    FOR EACH ROW WHEN (NEW.state <> 'requested') EXECUTE FUNCTION payouts_withdrawal_red_line_state();
DROP TRIGGER IF EXISTS payouts_withdrawal_red_line_state ON payouts_withdrawal;
CREATE TRIGGER payouts_withdrawal_red_line_state BEFORE UPDATE OF state ON payouts_withdrawal
    FOR EACH ROW WHEN (OLD.state IS DISTINCT FROM NEW.state) EXECUTE FUNCTION payouts_withdrawal_red_line_state();
DROP TRIGGER IF EXISTS payouts_withdrawal_red_line_money_born ON payouts_withdrawal;
CREATE CONSTRAINT TRIGGER payouts_withdrawal_red_line_money_born AFTER INSERT ON payouts_withdrawal
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION payouts_withdrawal_red_line_money();
DROP TRIGGER IF EXISTS payouts_withdrawal_red_line_money ON payouts_withdrawal;
CREATE CONSTRAINT TRIGGER payouts_withdrawal_red_line_money AFTER UPDATE OF state ON payouts_withdrawal
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW WHEN (OLD.state IS DISTINCT FROM NEW.state)
    EXECUTE FUNCTION payouts_withdrawal_red_line_money();
"""

BACKWARD = r"""
DROP TRIGGER IF EXISTS payouts_withdrawal_red_line_money ON payouts_withdrawal;
DROP TRIGGER IF EXISTS payouts_withdrawal_red_line_money_born ON payouts_withdrawal;
DROP TRIGGER IF EXISTS payouts_withdrawal_red_line_state ON payouts_withdrawal;
DROP TRIGGER IF EXISTS payouts_withdrawal_red_line_born ON payouts_withdrawal;
DROP FUNCTION IF EXISTS payouts_withdrawal_red_line_money();
DROP FUNCTION IF EXISTS payouts_withdrawal_red_line_state();
"""


class Migration(migrations.Migration):
    dependencies = [
        ("ops", "0007_red_line_content"),
        ("payouts", "0008_payout_lease"),
    ]

    operations = [
        red_line_operation(
            table="payouts_withdrawal",
            what="a withdrawal's amount, currency and player",
            columns=("amount_u", "currency", "user_id"),
            recreate=True,
        ),
        red_line_sql_operation(forward=FORWARD, backward=BACKWARD),
    ]
