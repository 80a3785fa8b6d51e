-- ledger_post(items, non-negative prefixes): posts single transactions and reversals, one round trip
-- per call (PostTransaction with coalescing off, ReverseTransaction). Each item is posted or refused
-- on its own.
-- p_items: [{"a": [names], "d": ["D"|"C"], "m": [amounts], "c": [currencies],
--            "desc": text, "ref": text, "meta": {..}, "rev": id|null,
--            "key": {"scope", "key", "lock": advisory lock id, "fp": hex fingerprint,
--                    "tpl": hex answer template (see ledger_post_response)}|null}]
-- An item with a key follows svckit.idempotency's protocol on its table: try the key's advisory lock
-- (IDEMPOTENCY_KEY_IN_USE if held), replay a stored answer (or IDEMPOTENCY_KEY_REUSED on another
-- fingerprint), else post and store the answer in the same transaction.
-- Why SQL: the key check, the account locks (ledger_check_item: FOR NO KEY UPDATE in id order, after
-- accounts on first use are created in name order), the checks and the writes happen in one
-- statement, so the checks see the newest committed balances under the locks that the writes need.
-- An item on existing accounts is checked before anything is written, so a refusal needs no undo
-- and no subtransaction (a batch of a hundred subtransactions would overflow PostgreSQL's per-backend
-- subtransaction cache and slow every reader). Only items that create accounts or reverse a
-- transaction run in an exception block, whose subtransaction undoes them if they are refused.

CREATE OR REPLACE FUNCTION ledger_post(p_items jsonb, p_nn_prefixes text[])
RETURNS TABLE (o_item int, o_reason text, o_message text, o_tx_id bigint, o_posted_at timestamptz,
               o_entries jsonb, o_stored bytea)
LANGUAGE plpgsql AS $fn$
DECLARE
    v_item jsonb;
    v_key jsonb;
    v_fp bytea;
    v_stored bytea;
    v_rev bigint;
    v_orig_rev bigint;
    v_names text[];
    v_dirs text[];
    v_amts bigint[];
    v_curs text[];
    v_distinct text[];
    v_missing boolean;
    v_refusal text;
    v_reason text;
    v_msg text;
    v_constraint text;
BEGIN
    o_item := 0;
    IF jsonb_array_length(p_items) > 1 THEN
        -- Items lock their accounts one after the other, so a batch would not take its locks in
        -- one global order; lock every existing account of the batch first, in id order.
        -- (Accounts created by the batch are invisible to others until commit.)
        PERFORM 1 FROM accounts a
            WHERE a.name = ANY (ARRAY(SELECT DISTINCT jsonb_array_elements_text(x.item_json -> 'a')
                                      FROM jsonb_array_elements(p_items) AS x(item_json)))
            ORDER BY a.id
            FOR NO KEY UPDATE;
    END IF;
    FOR v_item IN SELECT value FROM jsonb_array_elements(p_items) LOOP
        o_item := o_item + 1;
        o_reason := NULL; o_message := NULL; o_tx_id := NULL; o_posted_at := NULL;
        o_entries := NULL; o_stored := NULL;

        v_key := v_item -> 'key';
        IF v_key IS NOT NULL AND jsonb_typeof(v_key) = 'object' THEN
            IF NOT pg_try_advisory_xact_lock((v_key ->> 'lock')::bigint) THEN
                o_reason := 'IDEMPOTENCY_KEY_IN_USE';
                o_message := 'a request with this idempotency key is still being processed; retry shortly';
                RETURN NEXT;
                CONTINUE;
            END IF;
            -- A new statement, so a new snapshot: it sees a holder that committed before our lock.
            SELECT k.fingerprint, k.response INTO v_fp, v_stored
                FROM idempotency_keys k WHERE k.scope = v_key ->> 'scope' AND k.key = v_key ->> 'key';
            IF FOUND THEN
                IF v_fp = decode(v_key ->> 'fp', 'hex') THEN
                    o_stored := v_stored;
                ELSE
                    o_reason := 'IDEMPOTENCY_KEY_REUSED';
                    o_message := 'this idempotency key was already used with a different request; use a new key';
                END IF;
                RETURN NEXT;
                CONTINUE;
            END IF;
        ELSE
            v_key := NULL;
        END IF;

        v_rev := (v_item ->> 'rev')::bigint;
        v_missing := false;
        IF v_rev IS NULL THEN
            v_names := ARRAY(SELECT jsonb_array_elements_text(v_item -> 'a'));
            v_dirs := ARRAY(SELECT jsonb_array_elements_text(v_item -> 'd'));
            v_amts := ARRAY(SELECT jsonb_array_elements_text(v_item -> 'm'))::bigint[];
            v_curs := ARRAY(SELECT jsonb_array_elements_text(v_item -> 'c'));
            v_distinct := ARRAY(SELECT DISTINCT x FROM unnest(v_names) AS x ORDER BY x);
            v_missing := (SELECT count(*) FROM accounts a WHERE a.name = ANY (v_distinct)) < cardinality(v_distinct);
            IF NOT v_missing THEN
                v_refusal := ledger_check_item(v_names, v_dirs, v_amts, v_curs, v_distinct);
                IF v_refusal IS NOT NULL THEN
                    o_reason := split_part(v_refusal, '|', 1);
                    o_message := substr(v_refusal, length(o_reason) + 2);
                ELSE
                    SELECT w.o_id, w.o_at INTO o_tx_id, o_posted_at
                        FROM ledger_write_item(v_item, v_key, NULL, v_names, v_dirs, v_amts, v_curs, v_distinct) w;
                END IF;
                RETURN NEXT;
                CONTINUE;
            END IF;
        END IF;

        BEGIN
            IF v_rev IS NOT NULL THEN
                SELECT t.reverses_id INTO v_orig_rev FROM transactions t WHERE t.id = v_rev;
                IF NOT FOUND THEN
                    RAISE EXCEPTION 'no transaction with id %', v_rev
                        USING ERRCODE = 'LG001', DETAIL = 'TRANSACTION_NOT_FOUND';
                END IF;
                IF v_orig_rev IS NOT NULL THEN
                    RAISE EXCEPTION 'transaction % is itself a reversal and cannot be reversed', v_rev
                        USING ERRCODE = 'LG001', DETAIL = 'CANNOT_REVERSE_REVERSAL';
                END IF;
                IF EXISTS (SELECT 1 FROM transactions t WHERE t.reverses_id = v_rev) THEN
                    RAISE EXCEPTION 'transaction % was already reversed', v_rev
                        USING ERRCODE = 'LG001', DETAIL = 'ALREADY_REVERSED';
                END IF;
                SELECT array_agg(a.name ORDER BY e.position),
                       array_agg(CASE e.direction WHEN 'D' THEN 'C' ELSE 'D' END ORDER BY e.position),
                       array_agg(e.amount ORDER BY e.position),
                       array_agg(e.currency::text ORDER BY e.position)
                    INTO v_names, v_dirs, v_amts, v_curs
                    FROM entries e JOIN accounts a ON a.id = e.account_id
                    WHERE e.transaction_id = v_rev;
                v_distinct := ARRAY(SELECT DISTINCT x FROM unnest(v_names) AS x ORDER BY x);
                o_entries := jsonb_build_object('a', v_names, 'd', v_dirs, 'm', v_amts, 'c', v_curs);
            ELSE
                -- Accounts on first use, in name order and before any row lock of this item.
                INSERT INTO accounts (name, type, currency, non_negative)
                    SELECT u.n, split_part(u.n, ':', 1),
                           (SELECT v_curs[g.k] FROM generate_subscripts(v_names, 1) AS g(k)
                            WHERE v_names[g.k] = u.n LIMIT 1),
                           EXISTS (SELECT 1 FROM unnest(p_nn_prefixes) AS p(prefix) WHERE starts_with(u.n, p.prefix))
                    FROM unnest(v_distinct) AS u(n)
                    ORDER BY u.n
                    ON CONFLICT (name) DO NOTHING;
            END IF;
            v_refusal := ledger_check_item(v_names, v_dirs, v_amts, v_curs, v_distinct);
            IF v_refusal IS NOT NULL THEN
                RAISE EXCEPTION '%', substr(v_refusal, length(split_part(v_refusal, '|', 1)) + 2)
                    USING ERRCODE = 'LG001', DETAIL = split_part(v_refusal, '|', 1);
            END IF;
            SELECT w.o_id, w.o_at INTO o_tx_id, o_posted_at
                FROM ledger_write_item(v_item, v_key, v_rev, v_names, v_dirs, v_amts, v_curs, v_distinct) w;
            RETURN NEXT;
        EXCEPTION
            WHEN SQLSTATE 'LG001' THEN
                GET STACKED DIAGNOSTICS v_reason = PG_EXCEPTION_DETAIL, v_msg = MESSAGE_TEXT;
                o_reason := v_reason; o_message := v_msg; o_tx_id := NULL; o_posted_at := NULL;
                o_entries := NULL;
                RETURN NEXT;
            WHEN unique_violation THEN
                GET STACKED DIAGNOSTICS v_constraint = CONSTRAINT_NAME;
                IF v_constraint <> 'uq_transactions_reverses_id' THEN
                    RAISE;
                END IF;
                -- A concurrent reversal of the same transaction committed first.
                o_reason := 'ALREADY_REVERSED';
                o_message := format('transaction %s was already reversed', v_rev);
                o_tx_id := NULL; o_posted_at := NULL; o_entries := NULL;
                RETURN NEXT;
        END;
    END LOOP;
END $fn$;
