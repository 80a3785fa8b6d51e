"""Tables of the reconciliation database (SQLAlchemy Core); the migrations are the source of truth."""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

reconciliation_runs = sa.Table(
    "reconciliation_runs",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("run_id", sa.Text, nullable=False, unique=True),
    sa.Column("kind", sa.Text, nullable=False, comment="SETTLEMENT_FILE or WALLET_LEDGER"),
    sa.Column("state", sa.Text, nullable=False, comment="RUNNING, SUCCEEDED or FAILED"),
    sa.Column("interval_start", sa.DateTime(timezone=True), comment="settlement runs only"),
    sa.Column("interval_end", sa.DateTime(timezone=True), comment="settlement runs only"),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("finished_at", sa.DateTime(timezone=True), comment="set when the run leaves RUNNING"),
    sa.Column("ok", sa.Boolean, comment="a succeeded run found no difference"),
    sa.Column("wallets_checked", sa.BigInteger),
    sa.Column("accounts_checked", sa.BigInteger),
    sa.Column("mismatch_count", sa.BigInteger),
    sa.Column("failure_reason", sa.Text, comment="reason code of the error that stopped a failed run"),
)
