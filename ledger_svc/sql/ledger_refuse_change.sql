-- ledger_refuse_change(): trigger function of the journal's immutability. Row triggers BEFORE UPDATE
-- OR DELETE and statement triggers BEFORE TRUNCATE on transactions, entries and transaction_chain
-- raise SQLSTATE LG002, so the journal stays append-only even if application code is wrong.
-- Corrections are new (reversing) transactions.

CREATE OR REPLACE FUNCTION ledger_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ledger % rows are immutable: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'LG002', HINT = 'post a reversing transaction instead';
END $$;
