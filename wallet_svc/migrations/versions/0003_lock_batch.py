"""wallet_lock_batch(): lock the wallets of a batch in one round trip, in one fixed order.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

# A batch (ApplyBatch, or a group of coalesced Credit/Debit calls) touches many wallets. Every batch
# locks its wallets through this function, which walks them in (seller_id, currency) order of the
# database's own collation: two batches therefore always queue on their common wallets in the same
# order and cannot deadlock; single-wallet calls hold only one wallet lock and cannot close a cycle.
#
# A wallet is created (empty) only when p_create says the batch will credit it: the batch's first
# applicable credit to a new wallet always fits, so every created wallet gets a movement in the same
# transaction, and a wallet that only debits would touch is never created (as with a single Debit).
# Wallets that neither exist nor may be created are left out of the result.
#
# After the locks are held it draws p_ids movement ids (the caller asks for one per item it may
# apply; unused ones are gaps, as after any rollback) and returns now(): the caller can then build
# each movement and its stored answer before writing, and write everything in one statement. Ids
# drawn under the wallet locks keep "within a wallet, id order is commit order".
#
# One row of parallel arrays.
LOCK_BATCH_FUNCTION = """
CREATE FUNCTION wallet_lock_batch(p_sellers text[], p_currencies text[], p_create boolean[], p_ids integer)
RETURNS TABLE (o_seller_ids text[], o_currencies text[], o_available bigint[], o_reserved bigint[],
               o_movement_ids bigint[], o_now timestamptz)
LANGUAGE plpgsql AS $$
DECLARE
  k record;
  w record;
BEGIN
  o_seller_ids := '{}'; o_currencies := '{}'; o_available := '{}'; o_reserved := '{}';
  FOR k IN
    SELECT t.s, t.c, t.cr FROM unnest(p_sellers, p_currencies, p_create) AS t(s, c, cr) ORDER BY t.s, t.c
  LOOP
    SELECT x.seller_id, x.currency, x.available_minor, x.reserved_minor INTO w
      FROM wallets x WHERE x.seller_id = k.s AND x.currency = k.c FOR UPDATE;
    IF NOT FOUND AND k.cr THEN
      -- Waits for a concurrent creator of the same wallet; the next statement (a new snapshot under
      -- READ COMMITTED) then sees and locks whichever row exists.
      INSERT INTO wallets (seller_id, currency) VALUES (k.s, k.c) ON CONFLICT DO NOTHING;
      SELECT x.seller_id, x.currency, x.available_minor, x.reserved_minor INTO w
        FROM wallets x WHERE x.seller_id = k.s AND x.currency = k.c FOR UPDATE;
    END IF;
    IF FOUND THEN
      o_seller_ids := o_seller_ids || w.seller_id;
      o_currencies := o_currencies || w.currency::text;
      o_available := o_available || w.available_minor;
      o_reserved := o_reserved || w.reserved_minor;
    END IF;
  END LOOP;
  SELECT coalesce(array_agg(nextval(pg_get_serial_sequence('wallet_movements', 'id'))), '{}')
    INTO o_movement_ids FROM generate_series(1, p_ids);
  o_now := now();
  RETURN NEXT;
END
$$;
"""


def upgrade() -> None:
    op.execute(LOCK_BATCH_FUNCTION)


def downgrade() -> None:
    op.execute("DROP FUNCTION wallet_lock_batch(text[], text[], boolean[], integer)")
