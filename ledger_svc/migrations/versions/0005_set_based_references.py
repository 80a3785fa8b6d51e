"""References of entries and chain links checked once per statement instead of once per row.

The foreign keys ``entries.transaction_id``, ``entries.account_id`` and
``transaction_chain.transaction_id`` ran one SPI query per inserted row: in a 100-posting batch, 400
checks, ≈ 13-15 µs of PostgreSQL CPU per posting (≈ a quarter of the batch statement). They are
replaced by checks that are just as strict and run once per INSERT statement, set-based:

* ``AFTER INSERT … FOR EACH STATEMENT`` triggers with a transition table look up the distinct
  referenced rows with one index probe each (``= ANY``), and raise SQLSTATE 23503
  (foreign_key_violation, as the foreign key did) when one is missing. The accounts are locked
  ``FOR KEY SHARE`` in id order, exactly the lock the foreign key took, so a concurrent delete of a
  referenced account waits for the inserting transaction.
* The referenced side is protected as the foreign key's ``NO ACTION`` did:
  transactions can never be deleted, updated or truncated (the immutability triggers of 0002);
  an account can be deleted only if no entry names it, checked by a row trigger after the row lock is
  taken, with a fresh snapshot (READ COMMITTED), so it sees the entries of an inserter it waited
  for; a delete under REPEATABLE READ or SERIALIZABLE, whose snapshot could miss such entries, is
  refused outright (nothing in the ledger deletes accounts that way: only the batch function drops
  the accounts it just created and left unused); an account's id cannot change; ``TRUNCATE accounts``
  is refused while any entry exists.

``chain_queue.transaction_id`` (single postings only) and ``transactions.reverses_id`` (NULL on
every ordinary posting, so never checked) keep their foreign keys.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-21
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_UPGRADE = r"""
ALTER TABLE entries
    DROP CONSTRAINT entries_transaction_id_fkey,
    DROP CONSTRAINT entries_account_id_fkey;
ALTER TABLE transaction_chain DROP CONSTRAINT transaction_chain_transaction_id_fkey;

CREATE FUNCTION ledger_entries_references() RETURNS trigger LANGUAGE plpgsql AS $$
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
CREATE TRIGGER entries_references AFTER INSERT ON entries
    REFERENCING NEW TABLE AS new_entries FOR EACH STATEMENT EXECUTE FUNCTION ledger_entries_references();

CREATE FUNCTION ledger_chain_references() RETURNS trigger LANGUAGE plpgsql AS $$
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
CREATE TRIGGER transaction_chain_references AFTER INSERT ON transaction_chain
    REFERENCING NEW TABLE AS new_links FOR EACH STATEMENT EXECUTE FUNCTION ledger_chain_references();

-- The referenced side of entries.account_id (what the foreign key's NO ACTION did).
CREATE FUNCTION ledger_account_referenced() RETURNS trigger LANGUAGE plpgsql AS $$
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
CREATE TRIGGER accounts_referenced_delete BEFORE DELETE ON accounts
    FOR EACH ROW EXECUTE FUNCTION ledger_account_referenced();
CREATE TRIGGER accounts_referenced_id BEFORE UPDATE OF id ON accounts
    FOR EACH ROW WHEN (OLD.id IS DISTINCT FROM NEW.id) EXECUTE FUNCTION ledger_account_referenced();
CREATE TRIGGER accounts_referenced_truncate BEFORE TRUNCATE ON accounts
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_account_referenced();
"""

_DOWNGRADE = r"""
DROP TRIGGER accounts_referenced_truncate ON accounts;
DROP TRIGGER accounts_referenced_id ON accounts;
DROP TRIGGER accounts_referenced_delete ON accounts;
DROP FUNCTION ledger_account_referenced();
DROP TRIGGER transaction_chain_references ON transaction_chain;
DROP FUNCTION ledger_chain_references();
DROP TRIGGER entries_references ON entries;
DROP FUNCTION ledger_entries_references();
-- Validated against the existing rows, which the triggers kept consistent.
ALTER TABLE transaction_chain
    ADD CONSTRAINT transaction_chain_transaction_id_fkey FOREIGN KEY (transaction_id) REFERENCES transactions (id);
ALTER TABLE entries
    ADD CONSTRAINT entries_transaction_id_fkey FOREIGN KEY (transaction_id) REFERENCES transactions (id),
    ADD CONSTRAINT entries_account_id_fkey FOREIGN KEY (account_id) REFERENCES accounts (id);
"""


def upgrade() -> None:
    op.execute(_UPGRADE)


def downgrade() -> None:
    op.execute(_DOWNGRADE)
