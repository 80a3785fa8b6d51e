-- ledger_post_batch(...): posts a batch (PostTransactions, and the coalescer's groups of concurrent
-- PostTransaction calls) in one statement, each item accepted or refused on its own, with the same
-- answers as posting the items one by one. Arguments as ledger_post_batch_exact; o_answer is the
-- answer stored under a new transaction's key (a serialized PostTransactionResponse), returned so the
-- service need not build it again.
--
-- Why SQL, and its locks: everything that does not need the account locks is done before taking them,
-- so concurrent batches over the same hot accounts overlap instead of queueing:
-- 1. Accounts on first use are created (name order, before any row lock); the item keys' advisory
--    locks are tried, never awaited, and their records read with one primary-key probe per key.
-- 2. Fast path, in a subtransaction, when no account of the batch is closed: one query decides every
--    item from what does not depend on balances (key in use / reused / replay, currency mismatch; an
--    account's currency and non-negative flag never change); the accepted items are written with one
--    multi-row INSERT per table and one chain_queue_batches row carrying each transaction's payload
--    tail for the chainer; only then are the batch's accounts locked FOR NO KEY UPDATE in id order
--    and re-read. Under the locks the decision is confirmed: no account closed meanwhile, no total
--    overflows, and each non-negative account's running balance, applying the accepted items in
--    request order, never goes below zero. Then every account's totals are updated once with the
--    batch's summed delta, through the primary key. Whenever those checks hold, the item-by-item
--    decision would have accepted and refused exactly the same items for the same reasons.
-- 3. Otherwise the subtransaction is rolled back (SQLSTATE LGFB1, caught here) and
--    ledger_post_batch_exact decides the batch item by item under the locks.
-- The stored answers are ledger_post_response's bytes, spliced by one set-based query whose per-row
-- pieces are fenced (OFFSET 0) so the planner computes each once instead of substituting the
-- inlined varint CASEs into every use.

CREATE OR REPLACE FUNCTION ledger_post_batch(
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
            -- LIMIT keeps this a per-key probe of the primary key: flattened into a join, a cached
            -- generic plan (estimated from a then-small table) scanned every key of the scope.
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
                -- The chainer's payload tails, from the values stored just above and below:
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
                    ORDER BY g.k));
                INSERT INTO entries (transaction_id, position, account_id, direction, amount, currency, posted_at)
                    SELECT w_tx[u.k], u.j - p_first[w_item[u.k]] + 1, a_id[v_eacc[u.j]], p_dirs[u.j], p_amts[u.j],
                           p_curs[u.j], w_at[u.k]
                    FROM unnest(e_j, e_k) AS u(j, k);
                -- ledger_post_response's bytes, set-based (see the header).
                w_answer := ARRAY(
                    SELECT '\x0a'::bytea || ledger_pb_varint(octet_length(t.tx)) || t.tx
                    FROM generate_subscripts(w_item, 1) AS k
                    CROSS JOIN LATERAL (
                        SELECT CASE WHEN s.sec <> 0 THEN '\x08'::bytea || ledger_pb_varint(s.sec) ELSE ''::bytea END
                               || CASE WHEN s.ns <> 0 THEN '\x10'::bytea || ledger_pb_varint(s.ns) ELSE ''::bytea END AS ts
                        FROM (SELECT floor(extract(epoch FROM w_at[k]))::bigint AS sec,
                                     (extract(microseconds FROM w_at[k])::bigint % 1000000) * 1000 AS ns OFFSET 0) s
                        OFFSET 0) m
                    CROSS JOIN LATERAL (
                        SELECT p_tpls[w_item[k]] || '\x08'::bytea || ledger_pb_varint(w_tx[k])
                               || '\x32'::bytea || ledger_pb_varint(octet_length(m.ts)) || m.ts AS tx
                        OFFSET 0) t
                    ORDER BY k);
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
                    WHERE a.id = d.id AND a.id = ANY (a_id);  -- the primary key, not a scan of accounts
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
