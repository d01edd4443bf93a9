"""A deposit behind the red line by content: its amount never changes, its refunds and chargebacks carry their journal.

- Its amount, currency and player never change; its refunded and charged-back totals never go down, nor
  together past its amount (the row trigger, `ops.db_guard.red_line_operation`).
- A rise of its refunded (charged-back) total must carry, in the same transaction, the refund
  (chargeback) journal debiting exactly that rise from the player's available account in the deposit's
  currency, naming the deposit (`webhooks.processing._reverse` posts it, then raises the total).

No setting lets anything else through (see `ops/db_guard.py` and docs/red-line.md).
"""

from django.db import migrations

from ops.db_guard import red_line_operation, red_line_sql_operation

FORWARD = r"""
CREATE OR REPLACE FUNCTION webhooks_deposit_red_line_reversal() RETURNS trigger LANGUAGE plpgsql SET search_path = pg_catalog, public, pg_temp AS $$
DECLARE
    reversal text;
    rise bigint;
BEGIN
    FOREACH reversal IN ARRAY ARRAY['refund', 'chargeback'] LOOP
        rise := CASE reversal WHEN 'refund' THEN NEW.refunded_u - OLD.refunded_u
                          ELSE NEW.charged_back_u - OLD.charged_back_u END;
        CONTINUE WHEN rise = 0;
        IF NOT EXISTS (
            SELECT 1 FROM ledger_account a
            JOIN ledger_entry e ON e.account_id = a.id
            JOIN ledger_journal j ON j.id = e.journal_id
            WHERE a.owner_id = NEW.user_id AND a.kind = 'user_available' AND a.currency = NEW.currency
              AND e.amount_u = -rise
              AND j.created_txid = txid_current() AND j.type = 'deposit_' || reversal
              AND j.metadata ->> 'deposit' = NEW.reference
        ) THEN
            RAISE EXCEPTION 'red line: UPDATE of webhooks_deposit (id %) refused; its % total rises by % with no % journal '
                            'of this transaction debiting the player', NEW.id, reversal, rise, reversal
                USING ERRCODE = 'insufficient_privilege';
        END IF;
    END LOOP;
    RETURN NULL;
END $$;

DROP TRIGGER IF EXISTS webhooks_deposit_red_line_reversal ON webhooks_deposit;
CREATE TRIGGER webhooks_deposit_red_line_reversal AFTER UPDATE OF refunded_u, charged_back_u ON webhooks_deposit
    FOR EACH ROW WHEN (OLD.refunded_u IS DISTINCT FROM NEW.refunded_u
                       OR OLD.charged_back_u IS DISTINCT FROM NEW.charged_back_u)
    EXECUTE FUNCTION webhooks_deposit_red_line_reversal();
"""

BACKWARD = r"""
DROP TRIGGER IF EXISTS webhooks_deposit_red_line_reversal ON webhooks_deposit;
DROP FUNCTION IF EXISTS webhooks_deposit_red_line_reversal();
"""


class Migration(migrations.Migration):
    dependencies = [("ops", "0007_red_line_content"), ("webhooks", "0004_red_line_when_setting")]

    operations = [
        red_line_operation(
            table="webhooks_deposit",
            what="a deposit's amount, currency and player, and its refunds and chargebacks going down",
            columns=("amount_u", "currency", "user_id"),
            refused_also=(
                "NEW.refunded_u < OLD.refunded_u OR NEW.charged_back_u < OLD.charged_back_u"
                " OR NEW.refunded_u + NEW.charged_back_u > NEW.amount_u"
            ),
            watched=("refunded_u", "charged_back_u"),
            recreate=True,
        ),
        red_line_sql_operation(forward=FORWARD, backward=BACKWARD),
    ]
