"""Tables of the ledger database (SQLAlchemy Core).

The baseline migration is the source of truth for the schema (it also holds the triggers and the
CHECK constraints; the functions are in ``ledger_svc/sql/``); these definitions mirror it for queries.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import JSONB

metadata = sa.MetaData()

accounts = sa.Table(
    "accounts",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("name", sa.Text, nullable=False, unique=True, comment="type:purpose[:id]"),
    sa.Column("type", sa.Text, nullable=False, comment="asset, liability, equity, revenue or expense"),
    sa.Column("currency", sa.CHAR(3), nullable=False, comment="ISO 4217 code"),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("non_negative", sa.Boolean, nullable=False, comment="normal-side balance may not go below 0"),
    sa.Column("closed_at", sa.DateTime(timezone=True), comment="set once; a closed account takes no entries"),
    sa.Column("debits_posted", sa.BigInteger, nullable=False, comment="running sum of debit entries"),
    sa.Column("credits_posted", sa.BigInteger, nullable=False, comment="running sum of credit entries"),
    sa.Column("last_transaction_id", sa.BigInteger, nullable=False, comment="last transaction touching it"),
)

transactions = sa.Table(
    "transactions",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("external_ref", sa.Text, nullable=False),
    sa.Column("metadata", JSONB, nullable=False),
    sa.Column("reverses_id", sa.BigInteger, sa.ForeignKey("transactions.id")),
    sa.Column("posted_at", sa.DateTime(timezone=True), nullable=False),
)
# A transaction is reversed at most once; ordinary postings (NULL) are not indexed.
sa.Index(
    "uq_transactions_reverses_id",
    transactions.c.reverses_id,
    unique=True,
    postgresql_where=transactions.c.reverses_id.isnot(None),
)

# The ForeignKeys of entries and transaction_chain describe references the database enforces with
# statement-level triggers (not FOREIGN KEY constraints); SQLAlchemy uses
# them for join conditions.
entries = sa.Table(
    "entries",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("transaction_id", sa.BigInteger, sa.ForeignKey("transactions.id"), nullable=False),
    sa.Column("position", sa.SmallInteger, nullable=False, comment="1-based order within the transaction"),
    sa.Column("account_id", sa.BigInteger, sa.ForeignKey("accounts.id"), nullable=False),
    sa.Column("direction", sa.CHAR(1), nullable=False, comment="D or C"),
    sa.Column("amount", sa.BigInteger, nullable=False, comment="minor units, > 0"),
    sa.Column("currency", sa.CHAR(3), nullable=False),
    sa.Column("posted_at", sa.DateTime(timezone=True), nullable=False),
)

transaction_chain = sa.Table(
    "transaction_chain",
    metadata,
    sa.Column("seq", sa.BigInteger, primary_key=True, comment="gapless, commit order"),
    sa.Column("transaction_id", sa.BigInteger, sa.ForeignKey("transactions.id"), nullable=False, unique=True),
    sa.Column("prev_hash", sa.LargeBinary, nullable=False),
    sa.Column("hash", sa.LargeBinary, nullable=False),
)

chain_queue = sa.Table(
    "chain_queue",
    metadata,
    sa.Column("transaction_id", sa.BigInteger, sa.ForeignKey("transactions.id"), primary_key=True),
)

# One row per batch: the transactions a batch posted, waiting together for the chainer.
chain_queue_batches = sa.Table(
    "chain_queue_batches",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(always=True), primary_key=True),
    sa.Column("transaction_ids", postgresql.ARRAY(sa.BigInteger), nullable=False),
    # Each transaction's canonical payload after "LTX1|<seq>|", computed by the batch; NULL:
    # the chainer rebuilds it from the stored rows.
    sa.Column("payload_tails", postgresql.ARRAY(sa.Text)),
)

chain_head = sa.Table(
    "chain_head",
    metadata,
    sa.Column("singleton", sa.Boolean, primary_key=True),
    sa.Column("last_seq", sa.BigInteger, nullable=False),
    sa.Column("last_hash", sa.LargeBinary, nullable=False),
)
