"""Baseline: the ledger's tables and the SQL functions of ``ledger_svc/sql``.

The tables, constraints and indexes are created here; every function comes from its own file in
``ledger_svc/sql`` (each file says what the function does and which lock it relies on). Everything
that must hold even if application code is wrong lives in the database: CHECK constraints (positive
amounts, valid directions, non-negative accounts), triggers that refuse UPDATE/DELETE/TRUNCATE of
the journal, a partial unique index that lets a transaction be reversed once, and statement-level
triggers that enforce the references of entries and chain links (in place of foreign keys, which
checked row by row). See docs/ledger.md.

The revision id is that of the last migration this baseline replaces (nothing was deployed), so a
development database already at the head stays valid.

Revision ID: 0008
Revises:
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

from ledger_svc import sql
from svckit.idempotency import create_table_in_migration

revision = "0008"
down_revision = None
branch_labels = None
depends_on = None

# Dependencies first: LANGUAGE sql bodies are checked when created (ledger_tx_payload needs ledger_lp,
# ledger_pb_varint needs ledger_pb_varint_loop); PL/pgSQL bodies only when first called.
FUNCTIONS = (
    "ledger_lp",
    "ledger_tx_payload",
    "ledger_chain_pending",
    "ledger_pb_varint_loop",
    "ledger_pb_varint",
    "ledger_post_response",
    "ledger_refuse_change",
    "ledger_entries_references",
    "ledger_chain_references",
    "ledger_account_referenced",
    "ledger_check_item",
    "ledger_write_item",
    "ledger_post",
    "ledger_post_batch_exact",
    "ledger_post_batch",
)

_NORMAL_BALANCE = (
    "CASE WHEN type IN ('asset','expense') THEN debits_posted - credits_posted "
    "ELSE credits_posted - debits_posted END"
)

_IMMUTABLE_TABLES = ("transactions", "entries", "transaction_chain")

_REFERENCE_TRIGGERS = """
CREATE TRIGGER entries_references AFTER INSERT ON entries
    REFERENCING NEW TABLE AS new_entries FOR EACH STATEMENT EXECUTE FUNCTION ledger_entries_references();
CREATE TRIGGER transaction_chain_references AFTER INSERT ON transaction_chain
    REFERENCING NEW TABLE AS new_links FOR EACH STATEMENT EXECUTE FUNCTION ledger_chain_references();
CREATE TRIGGER accounts_referenced_delete BEFORE DELETE ON accounts
    FOR EACH ROW EXECUTE FUNCTION ledger_account_referenced();
CREATE TRIGGER accounts_referenced_id BEFORE UPDATE OF id ON accounts
    FOR EACH ROW WHEN (OLD.id IS DISTINCT FROM NEW.id) EXECUTE FUNCTION ledger_account_referenced();
CREATE TRIGGER accounts_referenced_truncate BEFORE TRUNCATE ON accounts
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_account_referenced();
"""


def _tables() -> None:
    create_table_in_migration()
    op.create_table(
        "accounts",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("name", sa.Text, nullable=False, unique=True),
        sa.Column("type", sa.Text, nullable=False),
        sa.Column("currency", sa.CHAR(3), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("non_negative", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("closed_at", sa.DateTime(timezone=True)),
        # Running totals, updated by every posting under the account's row lock.
        sa.Column("debits_posted", sa.BigInteger, nullable=False, server_default=sa.text("0")),
        sa.Column("credits_posted", sa.BigInteger, nullable=False, server_default=sa.text("0")),
        sa.Column("last_transaction_id", sa.BigInteger, nullable=False, server_default=sa.text("0")),
        sa.CheckConstraint(
            "type IN ('asset','liability','equity','revenue','expense')", name="ck_accounts_type"
        ),
        sa.CheckConstraint("debits_posted >= 0 AND credits_posted >= 0", name="ck_accounts_totals"),
        sa.CheckConstraint(f"NOT non_negative OR {_NORMAL_BALANCE} >= 0", name="ck_accounts_non_negative"),
        sa.CheckConstraint("currency ~ '^[A-Z]{3}$'", name="ck_accounts_currency"),
    )
    op.create_table(
        "transactions",
        sa.Column("id", sa.BigInteger, sa.Identity(always=True), primary_key=True),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("external_ref", sa.Text, nullable=False),
        sa.Column("metadata", JSONB, nullable=False),
        sa.Column("reverses_id", sa.BigInteger, sa.ForeignKey("transactions.id")),
        sa.Column("posted_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("reverses_id <> id", name="ck_transactions_not_self_reversal"),
    )
    op.create_index(
        "ix_transactions_external_ref",
        "transactions",
        ["external_ref"],
        postgresql_where=sa.text("external_ref <> ''"),
    )
    # A transaction is reversed at most once; ordinary postings (NULL) are not indexed. ledger_post
    # matches this name on a unique violation to answer ALREADY_REVERSED.
    op.create_index(
        "uq_transactions_reverses_id",
        "transactions",
        ["reverses_id"],
        unique=True,
        postgresql_where=sa.text("reverses_id IS NOT NULL"),
    )
    # transaction_id and account_id are enforced by ledger_entries_references, once per statement.
    op.create_table(
        "entries",
        sa.Column("id", sa.BigInteger, sa.Identity(always=True), primary_key=True),
        sa.Column("transaction_id", sa.BigInteger, nullable=False),
        sa.Column("position", sa.SmallInteger, nullable=False),
        sa.Column("account_id", sa.BigInteger, nullable=False),
        sa.Column("direction", sa.CHAR(1), nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.CHAR(3), nullable=False),
        sa.Column("posted_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("transaction_id", "position", name="uq_entries_transaction_position"),
        sa.CheckConstraint("direction IN ('D', 'C')", name="ck_entries_direction"),
        sa.CheckConstraint("amount > 0", name="ck_entries_amount_positive"),
    )
    op.create_index("ix_entries_account_id", "entries", ["account_id", "id"])
    # The hash chain: one link per transaction, gapless sequence in commit order. transaction_id is
    # enforced by ledger_chain_references, once per statement.
    op.create_table(
        "transaction_chain",
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("transaction_id", sa.BigInteger, nullable=False, unique=True),
        sa.Column("prev_hash", sa.LargeBinary, nullable=False),
        sa.Column("hash", sa.LargeBinary, nullable=False),
        sa.CheckConstraint("seq > 0", name="ck_chain_seq_positive"),
        sa.CheckConstraint(
            "octet_length(prev_hash) = 32 AND octet_length(hash) = 32", name="ck_chain_hash_length"
        ),
    )
    # Transactions committed but not yet linked (see ledger_chain_pending): single postings one row
    # each; batches one row per batch, with each transaction's payload tail.
    op.create_table(
        "chain_queue",
        sa.Column(
            "transaction_id",
            sa.BigInteger,
            sa.ForeignKey("transactions.id"),
            primary_key=True,
            autoincrement=False,
        ),
    )
    op.create_table(
        "chain_queue_batches",
        sa.Column("id", sa.BigInteger, sa.Identity(always=True), primary_key=True),
        sa.Column("transaction_ids", ARRAY(sa.BigInteger), nullable=False),
        sa.Column("payload_tails", ARRAY(sa.Text)),
        sa.CheckConstraint("cardinality(transaction_ids) > 0", name="ck_chain_queue_batches_not_empty"),
        sa.CheckConstraint(
            "payload_tails IS NULL OR cardinality(payload_tails) = cardinality(transaction_ids)",
            name="ck_chain_queue_batches_tails",
        ),
    )
    # The single serialization point of the chain; locked only by the chainer.
    op.create_table(
        "chain_head",
        sa.Column("singleton", sa.Boolean, primary_key=True, server_default=sa.true()),
        sa.Column("last_seq", sa.BigInteger, nullable=False),
        sa.Column("last_hash", sa.LargeBinary, nullable=False),
        sa.CheckConstraint("singleton", name="ck_chain_head_singleton"),
    )
    op.execute(
        "INSERT INTO chain_head (singleton, last_seq, last_hash) VALUES (true, 0, decode(repeat('00', 32), 'hex'))"
    )


def upgrade() -> None:
    _tables()
    sql.load(*FUNCTIONS)
    for table in _IMMUTABLE_TABLES:
        op.execute(
            f"CREATE TRIGGER {table}_immutable BEFORE UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change()"
        )
        op.execute(
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change()"
        )
    op.execute(_REFERENCE_TRIGGERS)


def downgrade() -> None:
    # Dropping a table drops its triggers; then the functions, which nothing uses any more.
    tables = ("chain_head", "chain_queue_batches", "chain_queue", "transaction_chain", "entries")
    for table in (*tables, "transactions", "accounts", "idempotency_keys"):
        op.drop_table(table)
    for name in reversed(FUNCTIONS):
        op.execute(f"DROP FUNCTION {name}")
