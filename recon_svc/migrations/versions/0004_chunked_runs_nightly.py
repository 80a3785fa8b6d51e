"""Chunked settlement runs (bookings per chunk, resumable files) and the nightly scheduler's days.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A file whose run was interrupted (crash, deploy) has no completed_at: running it again resumes it.
    op.add_column("settlement_files", sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True))
    # The last line whose chunk committed: a resumed run skips up to it, and any row after it that an earlier
    # run of the same file claimed is that file's duplicate.
    op.add_column(
        "settlement_files", sa.Column("committed_line", sa.Integer, nullable=False, server_default="0")
    )
    # One ledger posting per (chunk, currency, account the gross is set against), written in the chunk's
    # transaction before it is posted, so a crash between the two is finished by the next run (same idempotency
    # key: the ledger replays).
    op.create_table(
        "settlement_bookings",
        sa.Column("booking_id", sa.Text, primary_key=True),
        sa.Column("run_id", sa.Text, nullable=False),
        sa.Column("currency", sa.Text, nullable=False),
        sa.Column("against", sa.Text, nullable=False, server_default="psp_receivable"),
        sa.Column("gross_minor", sa.BigInteger, nullable=False),
        sa.Column("fee_minor", sa.BigInteger, nullable=False),
        sa.Column("row_count", sa.Integer, nullable=False),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("ledger_transaction_id", sa.BigInteger, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("posted_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index(
        "ix_settlement_bookings_pending",
        "settlement_bookings",
        ["created_at"],
        postgresql_where=sa.text("state = 'pending'"),
    )
    op.add_column("settlement_rows", sa.Column("booking_id", sa.Text, nullable=True))
    # The nightly scheduler: one row per (PSP account, day), claimed by one replica at a time.
    op.create_table(
        "recon_nightly_days",
        sa.Column("account", sa.Text, primary_key=True),
        sa.Column("day", sa.Date, primary_key=True),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("run_id", sa.Text, nullable=True),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("claimed_by", sa.Text, nullable=True),
        sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )


def downgrade() -> None:
    op.drop_table("recon_nightly_days")
    op.drop_column("settlement_rows", "booking_id")
    op.drop_index("ix_settlement_bookings_pending", table_name="settlement_bookings")
    op.drop_table("settlement_bookings")
    op.drop_column("settlement_files", "committed_line")
    op.drop_column("settlement_files", "completed_at")
