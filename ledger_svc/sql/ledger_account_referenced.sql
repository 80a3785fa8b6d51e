-- ledger_account_referenced(): the referenced side of entries.account_id, as the foreign key's NO
-- ACTION guarded it (triggers accounts_referenced_delete / _id / _truncate). An account with entries
-- cannot be deleted; its id cannot change; TRUNCATE accounts is refused while any entry exists
-- (SQLSTATE 23503). The delete check runs after the row lock is taken, so an inserter that locked the
-- account FOR KEY SHARE (ledger_entries_references) has finished, and under READ COMMITTED the
-- check's fresh snapshot sees its entries; other isolation levels may not delete accounts at all.
-- (Only ledger_post_batch deletes accounts: the unused ones it just created.)

CREATE OR REPLACE FUNCTION ledger_account_referenced() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        IF EXISTS (SELECT 1 FROM entries) THEN
            RAISE EXCEPTION 'accounts cannot be truncated while entries exist'
                USING ERRCODE = 'foreign_key_violation', TABLE = 'accounts';
        END IF;
        RETURN NULL;
    END IF;
    IF TG_OP = 'UPDATE' THEN
        RAISE EXCEPTION 'an account''s id cannot change'
            USING ERRCODE = 'foreign_key_violation', TABLE = 'accounts';
    END IF;
    -- DELETE. The row lock is already held here, so an inserter that locked this account FOR KEY
    -- SHARE has finished; under READ COMMITTED this query's fresh snapshot sees its entries. An
    -- older snapshot could miss them, so other isolation levels may not delete accounts at all.
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION 'accounts can only be deleted under READ COMMITTED'
            USING ERRCODE = 'foreign_key_violation', TABLE = 'accounts';
    END IF;
    IF EXISTS (SELECT 1 FROM entries e WHERE e.account_id = OLD.id) THEN
        RAISE EXCEPTION 'account % has entries and cannot be deleted', OLD.id
            USING ERRCODE = 'foreign_key_violation', TABLE = 'accounts';
    END IF;
    RETURN OLD;
END $$;
