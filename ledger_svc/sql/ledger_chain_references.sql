-- ledger_chain_references(): AFTER INSERT ... FOR EACH STATEMENT trigger on transaction_chain, in
-- place of the foreign key transaction_chain.transaction_id: every linked transaction must exist
-- (SQLSTATE 23503 otherwise), checked once per statement. Transactions are immutable, so no lock is
-- needed: existence now is existence forever.

CREATE OR REPLACE FUNCTION ledger_chain_references() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v_transactions bigint[];
    v_found int;
BEGIN
    SELECT array_agg(n.transaction_id) INTO v_transactions FROM new_links n;
    IF v_transactions IS NULL THEN
        RETURN NULL;
    END IF;
    -- transaction_id is UNIQUE in transaction_chain, so the array has no duplicates.
    SELECT count(*) INTO v_found FROM transactions t WHERE t.id = ANY (v_transactions);
    IF v_found <> cardinality(v_transactions) THEN
        RAISE EXCEPTION 'insert into transaction_chain names a transaction that does not exist'
            USING ERRCODE = 'foreign_key_violation', TABLE = 'transaction_chain';
    END IF;
    RETURN NULL;
END $$;
