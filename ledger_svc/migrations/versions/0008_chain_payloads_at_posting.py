"""The batch path hands the chainer each transaction's canonical payload; reversal uniqueness only
indexes reversals.

Chain payloads. ``ledger_chain_pending`` rebuilt every payload from the stored rows: the transaction,
its entries and each entry's account name, looked up again right after the batch had written them.
With entries spread over 10,000 accounts that read was ≈ 24 µs of PostgreSQL per transaction
(pg_stat_statements), about a fifth of a batched posting's database time. The batch function already
holds every field in its arguments, so it now computes the part of the payload that follows the
chain position (the *tail*: id, posting time, reversal, texts, metadata, entries; same encoding as
``ledger_tx_payload``, see docs/ledger.md) and queues it next to the ids in
``chain_queue_batches.payload_tails``. The chainer prefixes ``LTX1|<seq>|`` and hashes; it rebuilds
from the tables only the transactions queued without a tail (single postings, the item-by-item
batch path, rows queued before this revision). Tamper evidence is unchanged: ``VerifyLedger``
recomputes every payload from the stored rows and compares hashes, so a tail that did not describe
what was stored would be reported, not trusted.

Reversal uniqueness. ``uq_transactions_reverses_id`` was a unique constraint over a column that is
NULL on every ordinary posting, and a B-tree indexes NULLs: one index insertion per posting for
nothing. It becomes a partial unique index of the same name over reversals only (the name is what
``ledger_post`` matches on a unique violation to answer ALREADY_REVERSED).

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-21
"""

from alembic import op

from svckit.migrations_env import earlier_revision

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_OLD_QUEUE = "                INSERT INTO chain_queue_batches (transaction_ids) VALUES (w_tx);"

# The tail of ledger_tx_payload's encoding (after 'LTX1|<seq>|'), from the batch's own arguments:
# what the INSERTs of this function store is exactly these values (reverses_id is NULL here).
_NEW_QUEUE = r"""                -- The chainer's payload tails (0008), from the values stored just above and below:
                -- one grouped pass over the accepted entries; metadata read only when there is some.
                INSERT INTO chain_queue_batches (transaction_ids, payload_tails) VALUES (w_tx, ARRAY(
                    SELECT w_tx[g.k] || '|' || (extract(epoch FROM w_at[g.k]) * 1000000)::bigint || '|0|'
                           || ledger_lp(p_desc[w_item[g.k]]) || ledger_lp(p_ref[w_item[g.k]])
                           || CASE WHEN p_meta[w_item[g.k]] = '{}'::jsonb THEN '0|' ELSE (
                                  SELECT count(*) || '|' || string_agg(ledger_lp(kv.key) || ledger_lp(kv.value), ''
                                                                       ORDER BY kv.key COLLATE "C")
                                  FROM jsonb_each_text(p_meta[w_item[g.k]]) AS kv) END
                           || g.n || '|' || g.s
                    FROM (SELECT u.k, count(*) AS n,
                                 string_agg(ledger_lp(p_names[u.j]) || p_dirs[u.j] || '|' || p_amts[u.j] || '|' || p_curs[u.j] || '|', ''
                                            ORDER BY u.j) AS s
                          FROM unnest(e_j, e_k) AS u(j, k) GROUP BY u.k) g
                    ORDER BY g.k));"""

_TABLES = """
ALTER TABLE chain_queue_batches
    ADD COLUMN payload_tails text[],
    ADD CONSTRAINT ck_chain_queue_batches_tails
        CHECK (payload_tails IS NULL OR cardinality(payload_tails) = cardinality(transaction_ids));

ALTER TABLE transactions DROP CONSTRAINT uq_transactions_reverses_id;
CREATE UNIQUE INDEX uq_transactions_reverses_id ON transactions (reverses_id) WHERE reverses_id IS NOT NULL;
"""

_TABLES_DOWN = """
DROP INDEX uq_transactions_reverses_id;
ALTER TABLE transactions ADD CONSTRAINT uq_transactions_reverses_id UNIQUE (reverses_id);

ALTER TABLE chain_queue_batches DROP CONSTRAINT ck_chain_queue_batches_tails, DROP COLUMN payload_tails;
"""

_CHAIN = r"""
CREATE OR REPLACE FUNCTION ledger_chain_pending(p_limit int) RETURNS int LANGUAGE plpgsql AS $$
DECLARE
    v_seq bigint;
    v_prev bytea;
    v_batches bigint[];
    v_ids bigint[];
    v_tails text[];
    v_missing bigint[];
    v_built text[];
    v_payloads text[];
    v_hashes bytea[];
    v_prevs bytea[];
    i int;
BEGIN
    SELECT h.last_seq, h.last_hash INTO v_seq, v_prev FROM chain_head h FOR UPDATE;
    -- Whole batch rows, oldest first, until about p_limit transactions.
    SELECT coalesce(array_agg(b.id), '{}') INTO v_batches
        FROM (SELECT q.id, sum(cardinality(q.transaction_ids)) OVER (ORDER BY q.id) - cardinality(q.transaction_ids) AS before
              FROM chain_queue_batches q) b
        WHERE b.before < p_limit;
    -- Ids in chain order with their queued tails (NULL: rebuild from the tables). unnest pads a
    -- NULL tails array with NULLs.
    SELECT array_agg(x.id ORDER BY x.id), array_agg(x.tail ORDER BY x.id) INTO v_ids, v_tails FROM (
        SELECT q.transaction_id AS id, NULL::text AS tail
            FROM (SELECT transaction_id FROM chain_queue ORDER BY transaction_id LIMIT p_limit) q
        UNION ALL
        SELECT u.id, u.tail
            FROM chain_queue_batches q, unnest(q.transaction_ids, q.payload_tails) AS u(id, tail)
            WHERE q.id = ANY (v_batches)
    ) x;
    IF v_ids IS NULL THEN
        RETURN 0;
    END IF;
    DELETE FROM chain_queue WHERE transaction_id = ANY (v_ids);
    DELETE FROM chain_queue_batches WHERE id = ANY (v_batches);
    v_missing := ARRAY(SELECT u.id FROM unnest(v_ids, v_tails) AS u(id, tail) WHERE u.tail IS NULL);
    IF cardinality(v_missing) > 0 THEN
        -- The tails of ledger_tx_payload's encoding, rebuilt from the stored rows (as 0004 did).
        SELECT array_agg(
                   t.id || '|' || (extract(epoch FROM t.posted_at) * 1000000)::bigint || '|'
                   || coalesce(t.reverses_id, 0) || '|'
                   || ledger_lp(t.description) || ledger_lp(t.external_ref)
                   || m.n || '|' || m.s
                   || coalesce(e.n, 0) || '|' || coalesce(e.s, '')
                   ORDER BY u.o)
            INTO v_built
            FROM unnest(v_missing) WITH ORDINALITY AS u(id, o)
            JOIN transactions t ON t.id = u.id
            CROSS JOIN LATERAL (
                SELECT count(*) AS n,
                       coalesce(string_agg(ledger_lp(kv.key) || ledger_lp(kv.value), '' ORDER BY kv.key COLLATE "C"), '') AS s
                FROM jsonb_each_text(t.metadata) AS kv
            ) m
            LEFT JOIN (
                SELECT x.transaction_id, count(*) AS n,
                       string_agg(ledger_lp(a.name) || x.direction || '|' || x.amount || '|' || x.currency || '|', ''
                                  ORDER BY x.position) AS s
                FROM entries x JOIN accounts a ON a.id = x.account_id
                WHERE x.transaction_id = ANY (v_missing)
                GROUP BY x.transaction_id
            ) e ON e.transaction_id = u.id;
        IF coalesce(cardinality(v_built), 0) <> cardinality(v_missing) THEN
            RAISE EXCEPTION 'queued transactions missing from the journal';
        END IF;
        -- v_missing is in chain order: fill the gaps of v_tails in turn.
        v_tails := ARRAY(
            SELECT coalesce(u.tail, v_built[sum((u.tail IS NULL)::int) OVER (ORDER BY u.o)])
            FROM unnest(v_tails) WITH ORDINALITY AS u(tail, o) ORDER BY u.o);
    END IF;
    v_payloads := ARRAY(SELECT 'LTX1|' || (v_seq + u.o) || '|' || u.tail
                        FROM unnest(v_tails) WITH ORDINALITY AS u(tail, o) ORDER BY u.o);
    v_hashes := array_fill(NULL::bytea, ARRAY[cardinality(v_ids)]);
    v_prevs := v_hashes;
    FOR i IN 1 .. cardinality(v_ids) LOOP
        v_prevs[i] := v_prev;
        v_prev := sha256(convert_to(v_payloads[i], 'UTF8') || v_prev);
        v_hashes[i] := v_prev;
    END LOOP;
    INSERT INTO transaction_chain (seq, transaction_id, prev_hash, hash)
        SELECT v_seq + u.o, u.id, u.p, u.h FROM unnest(v_ids, v_prevs, v_hashes) WITH ORDINALITY AS u(id, p, h, o);
    UPDATE chain_head SET last_seq = v_seq + cardinality(v_ids), last_hash = v_prev;
    RETURN cardinality(v_ids);
END $$;
"""


def _batch_0007() -> str:
    """``ledger_post_batch`` as revision 0007 left it."""
    rev = earlier_revision(__file__, "0007_answer_as_sql_expression.py")
    return rev._batch_0006().replace(rev._OLD_ANSWER, rev._NEW_ANSWER)


def upgrade() -> None:
    op.execute(_TABLES)
    text = _batch_0007()
    if text.count(_OLD_QUEUE) != 1:
        raise RuntimeError("0007's ledger_post_batch is not the text this revision patches")
    op.execute(text.replace(_OLD_QUEUE, _NEW_QUEUE))
    op.execute(_CHAIN)


def downgrade() -> None:
    # Queued tails are dropped with their column: the older chainer rebuilds every payload.
    op.execute(earlier_revision(__file__, "0004_batch_fast_path.py")._CHAIN)
    op.execute(_batch_0007())
    op.execute(_TABLES_DOWN)
