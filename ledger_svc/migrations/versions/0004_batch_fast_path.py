"""Batch posting decided set-based, account locks taken last; one chain-queue row per batch; the
chainer builds its payloads with one query.

``ledger_post_batch`` used to lock every account of a batch first and then decide its items one
after the other in PL/pgSQL, so everything the batch did (key records, transactions, entries) ran
while it held the account locks, and batches over the same hot accounts ran one at a time. Now:

1. Accounts on first use are created as before (name order, before any row lock), the item keys'
   advisory locks are tried and their records read as before.
2. Fast path, in a subtransaction, when no account of the batch is closed: the items are decided with
   one query from what does not depend on balances (key in use / reused / replay, currency
   mismatch; currencies and the non-negative flag never change), the accepted ones are written with
   one multi-row INSERT per table, and only then are the batch's accounts locked (id order, as
   before) and re-read. Under the locks the decisions are confirmed: no account closed meanwhile, no
   total overflows, and each non-negative account's running balance, applying the accepted items in
   request order, never goes below zero. Then every account's totals are updated once with the
   batch's summed delta. Whenever those checks hold, the item-by-item decision would have accepted
   and refused exactly the same items for the same reasons.
3. Otherwise the subtransaction is rolled back (``LGFB1``) and ``ledger_post_batch_exact`` (the
   previous function, unchanged) decides the batch item by item under the locks. Same answers, one
   code path per case, and the fast path never has to reproduce the running-balance refusals.

Transactions of a batch are queued for the chainer as one ``chain_queue_batches`` row instead of one
``chain_queue`` row each, and ``ledger_chain_pending`` computes the canonical payloads of a whole pass
with one set-based query (same encoding as ``ledger_tx_payload``) instead of one query per transaction.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-21
"""

import re

from alembic import op

from svckit.migrations_env import earlier_revision

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_TABLES = """
-- Transactions posted by one batch, waiting together for the chainer (see ledger_chain_pending).
CREATE TABLE chain_queue_batches (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    transaction_ids bigint[] NOT NULL,
    CONSTRAINT ck_chain_queue_batches_not_empty CHECK (cardinality(transaction_ids) > 0)
);
"""

_CHAIN = r"""
CREATE OR REPLACE FUNCTION ledger_chain_pending(p_limit int) RETURNS int LANGUAGE plpgsql AS $$
DECLARE
    v_seq bigint;
    v_prev bytea;
    v_batches bigint[];
    v_ids bigint[];
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
    SELECT array_agg(x.id ORDER BY x.id) INTO v_ids FROM (
        SELECT q.transaction_id AS id FROM (SELECT transaction_id FROM chain_queue ORDER BY transaction_id LIMIT p_limit) q
        UNION ALL
        SELECT unnest(q.transaction_ids) FROM chain_queue_batches q WHERE q.id = ANY (v_batches)
    ) x;
    IF v_ids IS NULL THEN
        RETURN 0;
    END IF;
    DELETE FROM chain_queue WHERE transaction_id = ANY (v_ids);
    DELETE FROM chain_queue_batches WHERE id = ANY (v_batches);
    -- The canonical encoding of ledger_tx_payload, for the whole pass in one query.
    SELECT array_agg(
               'LTX1|' || (v_seq + u.o) || '|' || t.id || '|'
               || (extract(epoch FROM t.posted_at) * 1000000)::bigint || '|'
               || coalesce(t.reverses_id, 0) || '|'
               || ledger_lp(t.description) || ledger_lp(t.external_ref)
               || m.n || '|' || m.s
               || coalesce(e.n, 0) || '|' || coalesce(e.s, '')
               ORDER BY u.o)
        INTO v_payloads
        FROM unnest(v_ids) WITH ORDINALITY AS u(id, o)
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
            WHERE x.transaction_id = ANY (v_ids)
            GROUP BY x.transaction_id
        ) e ON e.transaction_id = u.id;
    IF cardinality(v_payloads) <> cardinality(v_ids) THEN
        RAISE EXCEPTION 'queued transactions missing from the journal';
    END IF;
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

_BATCH = r"""
DROP FUNCTION ledger_post_batch(int[], int[], text[], text[], bigint[], text[], text[], text[], jsonb[],
                               text, text[], bigint[], bytea[], bytea[], text[]);
-- o_answer: the answer stored under a new transaction's key (a serialized PostTransactionResponse),
-- returned so the service need not build it again.
CREATE FUNCTION ledger_post_batch(
    p_first int[], p_count int[], p_names text[], p_dirs text[], p_amts bigint[], p_curs text[],
    p_desc text[], p_ref text[], p_meta jsonb[],
    p_scope text, p_keys text[], p_locks bigint[], p_fps bytea[], p_tpls bytea[], p_nn_prefixes text[])
RETURNS TABLE (o_item int, o_reason text, o_message text, o_tx_id bigint, o_posted_at timestamptz,
               o_stored bytea, o_answer bytea)
LANGUAGE plpgsql AS $fn$
DECLARE
    v_distinct text[] := ARRAY(SELECT DISTINCT x FROM unnest(p_names) AS x ORDER BY x);
    v_created bigint[] := '{}';
    a_id bigint[]; a_name text[]; a_cur text[];
    v_any_closed boolean;
    v_eacc int[];       -- entry -> account slot (slots in account id order)
    v_eitem int[];      -- entry -> item
    v_got boolean[];
    v_old_fp bytea[];
    v_old_resp bytea[];
    r_reason text[];
    r_msg text[];
    w_item int[] := '{}';       -- accepted items, in request order
    w_tx bigint[] := '{}';
    w_at timestamptz[] := '{}';
    w_answer bytea[] := '{}';
    e_j int[];                  -- entries of accepted items
    e_k int[];                  -- ... and the index of their item in w_item
    l_n int;
    l_closed boolean;
    l_ok boolean;
    v_fast boolean := false;
BEGIN
    -- No lock yet: currency and the non-negative flag never change; closed_at is checked again
    -- under the lock. (Read first: in the common case every account exists and this is the only
    -- look at them before the lock.)
    SELECT array_agg(a.id ORDER BY a.id), array_agg(a.name ORDER BY a.id), array_agg(a.currency::text ORDER BY a.id),
           bool_or(a.closed_at IS NOT NULL)
        INTO a_id, a_name, a_cur, v_any_closed
        FROM accounts a WHERE a.name = ANY (v_distinct);
    IF coalesce(cardinality(a_id), 0) < cardinality(v_distinct) THEN
        WITH created AS (
            INSERT INTO accounts (name, type, currency, non_negative)
                SELECT u.n, split_part(u.n, ':', 1),
                       (SELECT p_curs[g.k] FROM generate_subscripts(p_names, 1) AS g(k)
                        WHERE p_names[g.k] = u.n ORDER BY g.k LIMIT 1),
                       EXISTS (SELECT 1 FROM unnest(p_nn_prefixes) AS p(prefix) WHERE starts_with(u.n, p.prefix))
                FROM unnest(v_distinct) AS u(n)
                WHERE NOT EXISTS (SELECT 1 FROM accounts a WHERE a.name = u.n)
                ORDER BY u.n
                ON CONFLICT (name) DO NOTHING
                RETURNING id
        )
        SELECT coalesce(array_agg(id), '{}') INTO v_created FROM created;
        SELECT array_agg(a.id ORDER BY a.id), array_agg(a.name ORDER BY a.id), array_agg(a.currency::text ORDER BY a.id),
               bool_or(a.closed_at IS NOT NULL)
            INTO a_id, a_name, a_cur, v_any_closed
            FROM accounts a WHERE a.name = ANY (v_distinct);
    END IF;
    IF coalesce(cardinality(a_id), 0) <> cardinality(v_distinct) THEN
        RAISE EXCEPTION 'accounts of the batch vanished while it ran';
    END IF;
    v_got := ARRAY(SELECT pg_try_advisory_xact_lock(u.l) FROM unnest(p_locks) WITH ORDINALITY AS u(l, o) ORDER BY u.o);
    -- A new statement, so a new snapshot: it sees holders that committed before we got their locks.
    SELECT array_agg(k.fingerprint ORDER BY u.o), array_agg(k.response ORDER BY u.o)
        INTO v_old_fp, v_old_resp
        FROM unnest(p_keys) WITH ORDINALITY AS u(key, o)
        LEFT JOIN LATERAL (
            -- A per-key probe of the primary key (see 0003).
            SELECT k.fingerprint, k.response FROM idempotency_keys k
            WHERE k.scope = p_scope AND k.key = u.key LIMIT 1
        ) k ON true;

    IF NOT v_any_closed THEN
        BEGIN
            v_eacc := ARRAY(SELECT s.slot FROM unnest(p_names) WITH ORDINALITY AS u(n, o)
                            JOIN unnest(a_name) WITH ORDINALITY AS s(n, slot) ON s.n = u.n ORDER BY u.o);
            v_eitem := ARRAY(SELECT g.i FROM generate_subscripts(p_first, 1) AS g(i)
                             CROSS JOIN LATERAL generate_series(p_first[g.i], p_first[g.i] + p_count[g.i] - 1) AS j
                             ORDER BY j);
            -- Every decision that does not depend on balances, in ledger_post_batch_exact's order:
            -- key in use, key reused, replay; then the first account (in id order) whose currency
            -- differs from its entry's (no account is closed, the other checks come under the lock).
            SELECT array_agg(d.reason ORDER BY d.i), array_agg(d.msg ORDER BY d.i)
                INTO r_reason, r_msg
                FROM (
                    SELECT g.i,
                           CASE WHEN NOT v_got[g.i] THEN 'IDEMPOTENCY_KEY_IN_USE'
                                WHEN v_old_fp[g.i] IS NOT NULL AND v_old_fp[g.i] <> p_fps[g.i] THEN 'IDEMPOTENCY_KEY_REUSED'
                                WHEN v_old_fp[g.i] IS NOT NULL THEN NULL
                                WHEN mm.slot IS NOT NULL THEN 'CURRENCY_MISMATCH' END AS reason,
                           CASE WHEN NOT v_got[g.i]
                                    THEN 'a request with this idempotency key is still being processed; retry shortly'
                                WHEN v_old_fp[g.i] IS NOT NULL AND v_old_fp[g.i] <> p_fps[g.i]
                                    THEN 'this idempotency key was already used with a different request; use a new key'
                                WHEN v_old_fp[g.i] IS NOT NULL THEN NULL
                                WHEN mm.slot IS NOT NULL
                                    THEN format('account %s is in %s, the entry is in %s', a_name[mm.slot], a_cur[mm.slot], mm.cur)
                           END AS msg
                    FROM generate_subscripts(p_first, 1) AS g(i)
                    LEFT JOIN (
                        SELECT DISTINCT ON (v_eitem[j]) v_eitem[j] AS i, v_eacc[j] AS slot, p_curs[j] AS cur
                        FROM generate_subscripts(p_names, 1) AS j
                        WHERE p_curs[j] <> a_cur[v_eacc[j]]
                        ORDER BY v_eitem[j], v_eacc[j]
                    ) mm ON mm.i = g.i
                ) d;
            w_item := ARRAY(SELECT g.i FROM generate_subscripts(p_first, 1) AS g(i)
                            WHERE r_reason[g.i] IS NULL AND v_old_fp[g.i] IS NULL ORDER BY g.i);
            IF cardinality(w_item) > 0 THEN
                SELECT array_agg(x.id ORDER BY x.k), array_agg(x.at ORDER BY x.k) INTO w_tx, w_at
                    FROM (SELECT g.k, nextval('transactions_id_seq') AS id, clock_timestamp() AS at
                          FROM generate_series(1, cardinality(w_item)) AS g(k) ORDER BY g.k) x;
                SELECT array_agg(j ORDER BY k, j), array_agg(k ORDER BY k, j) INTO e_j, e_k
                    FROM generate_subscripts(w_item, 1) AS k
                    CROSS JOIN LATERAL generate_series(p_first[w_item[k]], p_first[w_item[k]] + p_count[w_item[k]] - 1) AS j;
                INSERT INTO transactions (id, description, external_ref, metadata, reverses_id, posted_at)
                    OVERRIDING SYSTEM VALUE
                    SELECT w_tx[k], p_desc[w_item[k]], p_ref[w_item[k]], p_meta[w_item[k]], NULL, w_at[k]
                    FROM generate_subscripts(w_item, 1) AS k;
                INSERT INTO chain_queue_batches (transaction_ids) VALUES (w_tx);
                INSERT INTO entries (transaction_id, position, account_id, direction, amount, currency, posted_at)
                    SELECT w_tx[u.k], u.j - p_first[w_item[u.k]] + 1, a_id[v_eacc[u.j]], p_dirs[u.j], p_amts[u.j],
                           p_curs[u.j], w_at[u.k]
                    FROM unnest(e_j, e_k) AS u(j, k);
                w_answer := ARRAY(SELECT ledger_post_response(p_tpls[w_item[k]], w_tx[k], w_at[k])
                                  FROM generate_subscripts(w_item, 1) AS k ORDER BY k);
                INSERT INTO idempotency_keys (scope, key, fingerprint, response)
                    SELECT p_scope, p_keys[w_item[k]], p_fps[w_item[k]], w_answer[k]
                    FROM generate_subscripts(w_item, 1) AS k;
            END IF;
            -- The account locks, in id order like every posting path, held until commit; the rows
            -- returned are the newest committed versions.
            WITH locked AS (
                SELECT l.id, l.closed, l.type, l.nn, l.dr, l.cr, row_number() OVER (ORDER BY l.id) AS slot
                FROM (SELECT a.id, a.closed_at IS NOT NULL AS closed, a.type, a.non_negative AS nn,
                             a.debits_posted::numeric AS dr, a.credits_posted::numeric AS cr
                      FROM accounts a WHERE a.id = ANY (a_id) ORDER BY a.id FOR NO KEY UPDATE) l
            ),
            per_item AS (  -- each accepted item's net change of each of its accounts
                SELECT v_eacc[u.j] AS slot, u.k,
                       sum(CASE WHEN p_dirs[u.j] = 'D' THEN p_amts[u.j] ELSE 0 END) AS dr,
                       sum(CASE WHEN p_dirs[u.j] = 'C' THEN p_amts[u.j] ELSE 0 END) AS cr
                FROM unnest(e_j, e_k) AS u(j, k)
                GROUP BY 1, 2
            ),
            running AS (
                SELECT p.slot, l.nn, l.type,
                       l.dr + sum(p.dr) OVER w AS dr, l.cr + sum(p.cr) OVER w AS cr
                FROM per_item p JOIN locked l ON l.slot = p.slot
                WINDOW w AS (PARTITION BY p.slot ORDER BY p.k)
            )
            SELECT (SELECT count(*) FROM locked), (SELECT bool_or(closed) FROM locked),
                   coalesce((SELECT bool_and(r.dr <= 9223372036854775807 AND r.cr <= 9223372036854775807
                                             AND (NOT r.nn OR CASE WHEN r.type IN ('asset', 'expense')
                                                                   THEN r.dr - r.cr ELSE r.cr - r.dr END >= 0))
                             FROM running r), true)
                INTO l_n, l_closed, l_ok;
            IF l_n <> cardinality(a_id) THEN
                RAISE EXCEPTION 'accounts of the batch vanished while it ran';
            END IF;
            IF l_closed OR NOT l_ok THEN
                RAISE EXCEPTION USING ERRCODE = 'LGFB1', MESSAGE = 'batch needs the item-by-item decision';
            END IF;
            IF cardinality(w_item) > 0 THEN
                -- Once per account, with the batch's summed delta.
                UPDATE accounts a
                    SET debits_posted = a.debits_posted + d.dr, credits_posted = a.credits_posted + d.cr,
                        last_transaction_id = greatest(a.last_transaction_id, d.last_tx)
                    FROM (SELECT a_id[v_eacc[u.j]] AS id,
                                 sum(CASE WHEN p_dirs[u.j] = 'D' THEN p_amts[u.j] ELSE 0 END) AS dr,
                                 sum(CASE WHEN p_dirs[u.j] = 'C' THEN p_amts[u.j] ELSE 0 END) AS cr,
                                 max(w_tx[u.k]) AS last_tx
                          FROM unnest(e_j, e_k) AS u(j, k) GROUP BY 1) d
                    WHERE a.id = d.id;
            END IF;
            v_fast := true;
        EXCEPTION WHEN SQLSTATE 'LGFB1' THEN
            v_fast := false;  -- everything since BEGIN is undone; the key locks taken before stay
        END;
    END IF;

    IF v_fast THEN
        RETURN QUERY
            SELECT g.i, r_reason[g.i], r_msg[g.i], w.tx, w.at,
                   CASE WHEN r_reason[g.i] IS NULL AND v_old_fp[g.i] IS NOT NULL THEN v_old_resp[g.i] END, w.answer
            FROM generate_subscripts(p_first, 1) AS g(i)
            LEFT JOIN unnest(w_item, w_tx, w_at, w_answer) AS w(i, tx, at, answer) ON w.i = g.i
            ORDER BY g.i;
    ELSE
        RETURN QUERY
            SELECT x.*, CASE WHEN x.o_tx_id IS NOT NULL THEN ledger_post_response(p_tpls[x.o_item], x.o_tx_id, x.o_posted_at) END
            FROM ledger_post_batch_exact(p_first, p_count, p_names, p_dirs, p_amts, p_curs, p_desc, p_ref,
                                         p_meta, p_scope, p_keys, p_locks, p_fps, p_tpls, p_nn_prefixes) AS x;
    END IF;
    IF cardinality(v_created) > 0 THEN
        -- A refused item creates nothing: drop the accounts made for the batch that got no entry.
        DELETE FROM accounts a
            WHERE a.id = ANY (v_created) AND NOT EXISTS (SELECT 1 FROM entries e WHERE e.account_id = a.id);
    END IF;
END $fn$;
"""


def _varint_sql() -> str:
    """``ledger_pb_varint`` as one SQL expression (inlined by the planner; the PL/pgSQL loop it replaces
    cost ≈ 8 µs per stored answer): the varint's bytes are assembled in a bigint and cut from
    ``int8send``. Up to 7 bytes (n < 2^49); larger numbers take the original loop."""
    cases = []
    for length in range(1, 8):
        parts = []
        for i in range(length):
            byte = f"((n >> {7 * i}) & 127)" if i < length - 1 else f"(n >> {7 * i})"
            if i < length - 1:
                byte = f"({byte} | 128)"
            parts.append(f"({byte} << {8 * (length - 1 - i)})")
        cases.append(
            f"WHEN n < {2 ** (7 * length)} THEN substring(int8send({' | '.join(parts)}) FROM {9 - length})"
        )
    return (
        "CREATE OR REPLACE FUNCTION ledger_pb_varint(n bigint) RETURNS bytea LANGUAGE sql IMMUTABLE PARALLEL SAFE\n"
        "AS $$ SELECT CASE WHEN n < 0 THEN ledger_pb_varint_loop(n)\n    "
        + "\n    ".join(cases)
        + "\n    ELSE ledger_pb_varint_loop(n) END $$;"
    )


def _batch_0003() -> str:
    return earlier_revision(__file__, "0003_batch_checks.py")._BATCH


def _chain_0002() -> str:
    functions = earlier_revision(__file__, "0002_journal.py")._FUNCTIONS
    found = re.search(r"CREATE FUNCTION ledger_chain_pending\(.*?END \$\$;", functions, re.S)
    if found is None:
        raise RuntimeError("0002 no longer defines ledger_chain_pending")
    body = found.group(0)
    return body.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1)


def upgrade() -> None:
    op.execute(_TABLES)
    # The loop version stays for the rare numbers >= 2^49 (and to raise on negative ones).
    op.execute("ALTER FUNCTION ledger_pb_varint(bigint) RENAME TO ledger_pb_varint_loop")
    op.execute(_varint_sql())
    op.execute(_CHAIN)
    # The item-by-item decision of 0003, unchanged, as the fallback (its account creation finds
    # every account already made, and so has nothing to clean up either).
    op.execute(_batch_0003().replace("FUNCTION ledger_post_batch(", "FUNCTION ledger_post_batch_exact(", 1))
    op.execute(_BATCH)


def downgrade() -> None:
    op.execute(
        "DROP FUNCTION ledger_post_batch(int[], int[], text[], text[], bigint[], text[], text[], text[], jsonb[], "
        "text, text[], bigint[], bytea[], bytea[], text[])"
    )
    op.execute(_batch_0003())
    op.execute("DROP FUNCTION ledger_post_batch_exact")
    op.execute(_chain_0002())
    op.execute(
        "INSERT INTO chain_queue (transaction_id) SELECT unnest(transaction_ids) FROM chain_queue_batches"
    )
    op.execute("DROP TABLE chain_queue_batches")
    op.execute("DROP FUNCTION ledger_pb_varint(bigint)")
    op.execute("ALTER FUNCTION ledger_pb_varint_loop(bigint) RENAME TO ledger_pb_varint")
