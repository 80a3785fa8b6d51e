-- ledger_check_item(...): locks one posting's accounts and checks everything that depends on stored
-- state; writes nothing. Returns NULL when the item may be posted, else 'REASON|message'.
-- The accounts are locked exclusively (FOR NO KEY UPDATE, which is what the running-total UPDATE
-- needs anyway) in id order, so concurrent posters queue on a hot account instead of deadlocking,
-- and the rows returned after the lock are the newest committed versions: every check sees every
-- posting committed before it. The locks are held until commit. (Shared locks plus totals added at
-- commit were measured too: with many posters on ten hot accounts the shared locks turn into
-- MultiXacts and cost PostgreSQL several times more CPU per posting.)
-- Per account, in id order: closed, currency, non-negative rule; ledger_post_batch_exact checks in
-- the same order, so a posting with several faults gets the same reason on either path.
-- All access to accounts goes through the name or id index (= ANY): the cost of a posting must not
-- grow with the number of accounts.

CREATE OR REPLACE FUNCTION ledger_check_item(p_names text[], p_dirs text[], p_amts bigint[], p_curs text[],
                                             p_distinct text[]) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    v_acc record;
    v_locked int := 0;
    v_net numeric;
    v_k int;
BEGIN
    FOR v_acc IN
        SELECT a.id, a.name, a.type, a.currency::text AS currency, a.closed_at, a.non_negative,
               a.debits_posted, a.credits_posted
        FROM accounts a WHERE a.name = ANY (p_distinct)
        ORDER BY a.id
        FOR NO KEY UPDATE
    LOOP
        v_locked := v_locked + 1;
        IF v_acc.closed_at IS NOT NULL THEN
            RETURN format('ACCOUNT_CLOSED|account %s is closed', v_acc.name);
        END IF;
        v_net := 0;  -- change of the balance on the account's normal side
        FOR v_k IN 1 .. cardinality(p_names) LOOP
            IF p_names[v_k] = v_acc.name THEN
                IF p_curs[v_k] <> v_acc.currency THEN
                    RETURN format('CURRENCY_MISMATCH|account %s is in %s, the entry is in %s',
                                  v_acc.name, v_acc.currency, p_curs[v_k]);
                END IF;
                v_net := v_net + CASE WHEN (p_dirs[v_k] = 'D') = (v_acc.type IN ('asset', 'expense'))
                                      THEN p_amts[v_k] ELSE -p_amts[v_k] END;
            END IF;
        END LOOP;
        IF v_acc.non_negative AND v_net < 0
           AND (CASE WHEN v_acc.type IN ('asset', 'expense') THEN v_acc.debits_posted - v_acc.credits_posted
                     ELSE v_acc.credits_posted - v_acc.debits_posted END) + v_net < 0 THEN
            RETURN format('INSUFFICIENT_BALANCE|account %s would go %s below zero', v_acc.name,
                          -(CASE WHEN v_acc.type IN ('asset', 'expense')
                                 THEN v_acc.debits_posted - v_acc.credits_posted
                                 ELSE v_acc.credits_posted - v_acc.debits_posted END + v_net));
        END IF;
    END LOOP;
    IF v_locked <> cardinality(p_distinct) THEN
        RETURN 'ACCOUNT_NOT_FOUND|an account of this transaction does not exist';
    END IF;
    RETURN NULL;
END $$;
