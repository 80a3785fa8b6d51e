-- ledger_entries_references(): AFTER INSERT ... FOR EACH STATEMENT trigger on entries, in place of
-- the foreign keys entries.transaction_id and entries.account_id (which ran one query per inserted
-- row, a large part of PostgreSQL's CPU per batched posting). Just as strict, once per
-- statement: the distinct referenced rows are looked up by primary key (= ANY) and a missing one
-- raises SQLSTATE 23503 (foreign_key_violation). The accounts are locked FOR KEY SHARE in id order,
-- the lock the foreign key took, so a concurrent delete of a referenced account waits for the
-- inserting transaction (ledger_account_referenced guards that side).

CREATE OR REPLACE FUNCTION ledger_entries_references() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v_accounts bigint[];
    v_transactions bigint[];
    v_found int;
BEGIN
    SELECT array_agg(DISTINCT n.account_id), array_agg(DISTINCT n.transaction_id)
        INTO v_accounts, v_transactions FROM new_entries n;
    IF v_accounts IS NULL THEN
        RETURN NULL;
    END IF;
    -- The foreign key's lock, once per account, in id order like every other lock on accounts.
    SELECT count(*) INTO v_found
        FROM (SELECT 1 FROM accounts a WHERE a.id = ANY (v_accounts) ORDER BY a.id FOR KEY SHARE) x;
    IF v_found <> cardinality(v_accounts) THEN
        RAISE EXCEPTION 'insert into entries names an account that does not exist'
            USING ERRCODE = 'foreign_key_violation', TABLE = 'entries';
    END IF;
    -- Transactions cannot be deleted (immutability triggers): existence now is existence forever.
    SELECT count(*) INTO v_found FROM transactions t WHERE t.id = ANY (v_transactions);
    IF v_found <> cardinality(v_transactions) THEN
        RAISE EXCEPTION 'insert into entries names a transaction that does not exist'
            USING ERRCODE = 'foreign_key_violation', TABLE = 'entries';
    END IF;
    RETURN NULL;
END $$;
