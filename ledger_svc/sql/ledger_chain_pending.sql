-- ledger_chain_pending(limit): links up to about p_limit committed, queued transactions into the hash
-- chain, in id order, and returns how many.
--
-- Postings do not touch the chain: ledger_post and ledger_post_batch_exact queue each new transaction
-- as a chain_queue row, ledger_post_batch queues a whole batch as one chain_queue_batches row (with
-- each transaction's payload tail, everything after 'LTX1|<seq>|'). So postings commit in parallel
-- and share WAL flushes; the chain is serialized here alone. Why SQL: the whole pass is one
-- statement, one short transaction under the single row lock of chain_head (FOR UPDATE), which
-- serializes concurrent chainers (one per service replica) and makes seq gapless. Batch rows are
-- taken whole; a transaction queued without a tail is rebuilt from the stored rows with one
-- set-based query. A transaction inserted by other means is never queued, and VerifyLedger reports
-- it unchained. VerifyLedger recomputes every payload from the stored rows, so a queued tail that did
-- not describe what was stored would show as a hash mismatch, not be trusted.

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
        -- The tails of ledger_tx_payload's encoding, rebuilt from the stored rows.
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
