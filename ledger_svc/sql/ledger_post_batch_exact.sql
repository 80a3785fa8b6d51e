-- ledger_post_batch_exact(...): the item-by-item decision of a batch, ledger_post_batch's fallback
-- when its fast path cannot confirm its decision (an account closed, an item that would take a
-- non-negative account below zero, a total that would overflow). Same arguments as ledger_post_batch;
-- entries of item i are p_*[p_first[i] .. p_first[i] + p_count[i] - 1]. One row per item.
-- Lock order, the same two phases as a single posting: first the accounts new to the whole batch
-- are created, in name order, before any row lock (first use: the currency of their first entry);
-- then every account is locked FOR NO KEY UPDATE in id order. Under those locks the items are decided
-- one after the other, in order, against running balances held in arrays, so item n sees the effect
-- of items 1..n-1 exactly as single postings would; each item's accounts are checked in id order
-- (closed, currency, non-negative per account, then total overflow), exactly like ledger_check_item,
-- so a posting with several faults gets the same reason alone or in a batch. Only the writes are
-- grouped: one statement per table. Every item carries a key (svckit.idempotency's protocol, as in
-- ledger_post); the keys' records are read with one primary-key probe per key. Accounts created here
-- that end up without an entry (their items were refused) are deleted again before commit: nobody
-- else has seen them.

CREATE OR REPLACE FUNCTION ledger_post_batch_exact(
    p_first int[], p_count int[], p_names text[], p_dirs text[], p_amts bigint[], p_curs text[],
    p_desc text[], p_ref text[], p_meta jsonb[],
    p_scope text, p_keys text[], p_locks bigint[], p_fps bytea[], p_tpls bytea[], p_nn_prefixes text[])
RETURNS TABLE (o_item int, o_reason text, o_message text, o_tx_id bigint, o_posted_at timestamptz,
               o_stored bytea)
LANGUAGE plpgsql AS $fn$
DECLARE
    v_items int := cardinality(p_first);
    v_got boolean[];
    v_old_fp bytea[];
    v_old_resp bytea[];
    v_distinct text[] := ARRAY(SELECT DISTINCT x FROM unnest(p_names) AS x ORDER BY x);
    a_id bigint[]; a_name text[]; a_type text[]; a_cur text[]; a_closed boolean[]; a_nn boolean[];
    a_dr numeric[]; a_cr numeric[]; a_last bigint[]; a_changed boolean[];
    v_eacc int[];
    -- per-item scratch: touched account slots and their deltas
    t_slot int[]; t_dr numeric[]; t_cr numeric[]; t_cur text[];
    v_pos int;
    v_slot int;
    v_bal numeric;
    v_reason text;
    v_msg text;
    v_id bigint;
    v_at timestamptz;
    -- accepted rows to write
    w_tx bigint[] := '{}'; w_desc text[] := '{}'; w_ref text[] := '{}'; w_meta jsonb[] := '{}';
    w_at timestamptz[] := '{}'; w_key text[] := '{}'; w_fp bytea[] := '{}'; w_tpl bytea[] := '{}';
    e_tx bigint[] := '{}'; e_pos int[] := '{}'; e_acc bigint[] := '{}'; e_dir text[] := '{}';
    e_amt bigint[] := '{}'; e_cur text[] := '{}'; e_at timestamptz[] := '{}';
    r_reason text[] := '{}'; r_msg text[] := '{}'; r_tx bigint[] := '{}'; r_at timestamptz[] := '{}';
    r_stored bytea[] := '{}';
    v_created bigint[] := '{}';
    i int; j int; k int;
BEGIN
    IF (SELECT count(*) FROM accounts a WHERE a.name = ANY (v_distinct)) < cardinality(v_distinct) THEN
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
    END IF;
    -- Exclusive account locks, in id order (the keys' locks below are only tried, never awaited).
    SELECT array_agg(l.id ORDER BY l.id), array_agg(l.name ORDER BY l.id), array_agg(l.type ORDER BY l.id),
           array_agg(l.currency::text ORDER BY l.id), array_agg(l.closed_at IS NOT NULL ORDER BY l.id),
           array_agg(l.non_negative ORDER BY l.id), array_agg(l.debits_posted::numeric ORDER BY l.id),
           array_agg(l.credits_posted::numeric ORDER BY l.id), array_agg(l.last_transaction_id ORDER BY l.id)
        INTO a_id, a_name, a_type, a_cur, a_closed, a_nn, a_dr, a_cr, a_last
        FROM (SELECT a.* FROM accounts a WHERE a.name = ANY (v_distinct) ORDER BY a.id FOR NO KEY UPDATE) l;
    IF coalesce(cardinality(a_id), 0) <> cardinality(v_distinct) THEN
        RAISE EXCEPTION 'accounts of the batch vanished while it ran';
    END IF;
    a_changed := array_fill(false, ARRAY[cardinality(a_id)]);
    v_eacc := ARRAY(SELECT array_position(a_name, u.n) FROM unnest(p_names) WITH ORDINALITY AS u(n, o) ORDER BY u.o);
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

    FOR i IN 1 .. v_items LOOP
        v_reason := NULL; v_msg := NULL; v_id := NULL; v_at := NULL;
        IF NOT v_got[i] THEN
            v_reason := 'IDEMPOTENCY_KEY_IN_USE';
            v_msg := 'a request with this idempotency key is still being processed; retry shortly';
        ELSIF v_old_fp[i] IS NOT NULL THEN
            IF v_old_fp[i] <> p_fps[i] THEN
                v_reason := 'IDEMPOTENCY_KEY_REUSED';
                v_msg := 'this idempotency key was already used with a different request; use a new key';
            END IF;
        ELSE
            -- The item's accounts in slot order (= account id order), checked like ledger_check_item
            -- does for a single posting (per account: closed, currency, non-negative; then overflow),
            -- so an item with several faults gets the same reason as the same single posting.
            t_slot := '{}'; t_dr := '{}'; t_cr := '{}'; t_cur := '{}';
            FOR j IN p_first[i] .. p_first[i] + p_count[i] - 1 LOOP
                v_slot := v_eacc[j];
                v_pos := array_position(t_slot, v_slot);
                IF v_pos IS NULL THEN
                    v_pos := 1;
                    WHILE v_pos <= cardinality(t_slot) AND t_slot[v_pos] < v_slot LOOP
                        v_pos := v_pos + 1;
                    END LOOP;
                    t_slot := t_slot[1:v_pos - 1] || v_slot || t_slot[v_pos:];
                    t_dr := t_dr[1:v_pos - 1] || 0::numeric || t_dr[v_pos:];
                    t_cr := t_cr[1:v_pos - 1] || 0::numeric || t_cr[v_pos:];
                    -- validate_posting gives each account one currency per transaction
                    t_cur := t_cur[1:v_pos - 1] || p_curs[j] || t_cur[v_pos:];
                END IF;
                IF p_dirs[j] = 'D' THEN t_dr[v_pos] := t_dr[v_pos] + p_amts[j];
                ELSE t_cr[v_pos] := t_cr[v_pos] + p_amts[j]; END IF;
            END LOOP;
            FOR k IN 1 .. cardinality(t_slot) LOOP
                v_slot := t_slot[k];
                IF a_closed[v_slot] THEN
                    v_reason := 'ACCOUNT_CLOSED'; v_msg := format('account %s is closed', a_name[v_slot]);
                    EXIT;
                END IF;
                IF t_cur[k] <> a_cur[v_slot] THEN
                    v_reason := 'CURRENCY_MISMATCH';
                    v_msg := format('account %s is in %s, the entry is in %s', a_name[v_slot], a_cur[v_slot], t_cur[k]);
                    EXIT;
                END IF;
                IF a_nn[v_slot] THEN
                    v_bal := CASE WHEN a_type[v_slot] IN ('asset', 'expense')
                                  THEN (a_dr[v_slot] + t_dr[k]) - (a_cr[v_slot] + t_cr[k])
                                  ELSE (a_cr[v_slot] + t_cr[k]) - (a_dr[v_slot] + t_dr[k]) END;
                    IF v_bal < 0 AND (CASE WHEN a_type[v_slot] IN ('asset', 'expense')
                                           THEN t_dr[k] - t_cr[k] ELSE t_cr[k] - t_dr[k] END) < 0 THEN
                        v_reason := 'INSUFFICIENT_BALANCE';
                        v_msg := format('account %s would go %s below zero', a_name[v_slot], -v_bal);
                        EXIT;
                    END IF;
                END IF;
            END LOOP;
            IF v_reason IS NULL THEN
                FOR k IN 1 .. cardinality(t_slot) LOOP
                    v_slot := t_slot[k];
                    IF a_dr[v_slot] + t_dr[k] > 9223372036854775807 OR a_cr[v_slot] + t_cr[k] > 9223372036854775807 THEN
                        v_reason := 'BALANCE_OVERFLOW';
                        v_msg := 'an account total would exceed the largest storable amount';
                        EXIT;
                    END IF;
                END LOOP;
            END IF;
            IF v_reason IS NULL THEN
                v_id := nextval('transactions_id_seq');
                v_at := clock_timestamp();
                FOR k IN 1 .. cardinality(t_slot) LOOP
                    v_slot := t_slot[k];
                    a_dr[v_slot] := a_dr[v_slot] + t_dr[k];
                    a_cr[v_slot] := a_cr[v_slot] + t_cr[k];
                    a_last[v_slot] := greatest(a_last[v_slot], v_id);
                    a_changed[v_slot] := true;
                END LOOP;
                w_tx := w_tx || v_id; w_desc := w_desc || p_desc[i]; w_ref := w_ref || p_ref[i];
                w_meta := w_meta || p_meta[i]; w_at := w_at || v_at; w_key := w_key || p_keys[i];
                w_fp := w_fp || p_fps[i]; w_tpl := w_tpl || p_tpls[i];
                FOR j IN p_first[i] .. p_first[i] + p_count[i] - 1 LOOP
                    e_tx := e_tx || v_id; e_pos := e_pos || (j - p_first[i] + 1); e_acc := e_acc || a_id[v_eacc[j]];
                    e_dir := e_dir || p_dirs[j]; e_amt := e_amt || p_amts[j]; e_cur := e_cur || p_curs[j];
                    e_at := e_at || v_at;
                END LOOP;
            END IF;
        END IF;
        r_reason := r_reason || v_reason; r_msg := r_msg || v_msg; r_tx := r_tx || v_id; r_at := r_at || v_at;
        r_stored := r_stored || CASE WHEN v_reason IS NULL AND v_id IS NULL THEN v_old_resp[i] END;
    END LOOP;

    IF cardinality(w_tx) > 0 THEN
        UPDATE accounts a
            SET debits_posted = a_dr[array_position(a_id, a.id)]::bigint,
                credits_posted = a_cr[array_position(a_id, a.id)]::bigint,
                last_transaction_id = a_last[array_position(a_id, a.id)]
            WHERE a.id = ANY (ARRAY(SELECT a_id[s] FROM generate_subscripts(a_id, 1) AS s WHERE a_changed[s]));
        WITH t AS (
            INSERT INTO transactions (id, description, external_ref, metadata, reverses_id, posted_at)
                OVERRIDING SYSTEM VALUE
                SELECT u.id, u.d, u.r, u.m, NULL, u.at FROM unnest(w_tx, w_desc, w_ref, w_meta, w_at) AS u(id, d, r, m, at)
                RETURNING id
        )
        INSERT INTO chain_queue (transaction_id) SELECT id FROM t;
        INSERT INTO entries (transaction_id, position, account_id, direction, amount, currency, posted_at)
            SELECT * FROM unnest(e_tx, e_pos, e_acc, e_dir, e_amt, e_cur, e_at);
        INSERT INTO idempotency_keys (scope, key, fingerprint, response)
            SELECT p_scope, u.k, u.fp, ledger_post_response(u.tpl, u.id, u.at)
            FROM unnest(w_key, w_fp, w_tpl, w_tx, w_at) AS u(k, fp, tpl, id, at);
    END IF;
    IF cardinality(v_created) > 0 THEN
        -- A refused item creates nothing: drop the accounts made for the batch that got no entry.
        DELETE FROM accounts a WHERE a.id = ANY (v_created) AND a.id <> ALL (e_acc);
    END IF;
    FOR i IN 1 .. v_items LOOP
        o_item := i; o_reason := r_reason[i]; o_message := r_msg[i]; o_tx_id := r_tx[i];
        o_posted_at := r_at[i]; o_stored := r_stored[i];
        RETURN NEXT;
    END LOOP;
END $fn$;
