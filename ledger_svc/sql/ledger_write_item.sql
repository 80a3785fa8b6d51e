-- ledger_write_item(...): writes one posting that ledger_check_item accepted (its account rows are
-- already locked FOR NO KEY UPDATE): the running totals, the transaction (queued for the chainer in
-- the same statement), its entries and, when the item carries a key, the key's record with the stored
-- answer (ledger_post_response), all in the posting's transaction.

CREATE OR REPLACE FUNCTION ledger_write_item(p_item jsonb, p_key jsonb, p_rev bigint, p_names text[], p_dirs text[],
                                             p_amts bigint[], p_curs text[], p_distinct text[],
                                             OUT o_id bigint, OUT o_at timestamptz)
LANGUAGE plpgsql AS $$
DECLARE
    v_acc record;
    v_acc_ids bigint[] := array_fill(0::bigint, ARRAY[cardinality(p_names)]);
    v_dr bigint;
    v_cr bigint;
    v_k int;
BEGIN
    o_id := nextval('transactions_id_seq');
    o_at := clock_timestamp();
    -- The rows are already locked by ledger_check_item.
    FOR v_acc IN SELECT a.id, a.name FROM accounts a WHERE a.name = ANY (p_distinct) ORDER BY a.id LOOP
        v_dr := 0; v_cr := 0;
        FOR v_k IN 1 .. cardinality(p_names) LOOP
            IF p_names[v_k] = v_acc.name THEN
                v_acc_ids[v_k] := v_acc.id;
                IF p_dirs[v_k] = 'D' THEN v_dr := v_dr + p_amts[v_k]; ELSE v_cr := v_cr + p_amts[v_k]; END IF;
            END IF;
        END LOOP;
        UPDATE accounts
            SET debits_posted = debits_posted + v_dr,
                credits_posted = credits_posted + v_cr,
                last_transaction_id = greatest(last_transaction_id, o_id)
            WHERE id = v_acc.id;
    END LOOP;
    -- Queue it for the chainer in the same statement (no trigger call per posting).
    WITH t AS (
        INSERT INTO transactions (id, description, external_ref, metadata, reverses_id, posted_at)
            OVERRIDING SYSTEM VALUE
            VALUES (o_id, coalesce(p_item ->> 'desc', ''), coalesce(p_item ->> 'ref', ''),
                    coalesce(p_item -> 'meta', '{}'::jsonb), p_rev, o_at)
            RETURNING id
    )
    INSERT INTO chain_queue (transaction_id) SELECT id FROM t;
    INSERT INTO entries (transaction_id, position, account_id, direction, amount, currency, posted_at)
        SELECT o_id, u.o, u.acc, u.d, u.m, u.c, o_at
        FROM unnest(v_acc_ids, p_dirs, p_amts, p_curs) WITH ORDINALITY AS u(acc, d, m, c, o);
    IF p_key IS NOT NULL AND p_key ? 'tpl' THEN
        -- The key's record, in the same transaction as the posting (as svckit.idempotency does).
        INSERT INTO idempotency_keys (scope, key, fingerprint, response)
            VALUES (p_key ->> 'scope', p_key ->> 'key', decode(p_key ->> 'fp', 'hex'),
                    ledger_post_response(decode(p_key ->> 'tpl', 'hex'), o_id, o_at));
    END IF;
END $$;
