"""Settlement files, the balance transactions they carried, mismatches and their audit trail.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A run of a settlement file: which file, and its report (counts and totals) once done.
    op.add_column("reconciliation_runs", sa.Column("file_sha256", sa.Text, nullable=True))
    op.add_column("reconciliation_runs", sa.Column("report", postgresql.JSONB, nullable=True))
    op.add_column("reconciliation_runs", sa.Column("error", sa.Text, nullable=True))
    op.create_table(
        "settlement_files",
        sa.Column("sha256", sa.Text, primary_key=True),
        sa.Column("size_bytes", sa.BigInteger, nullable=False),
        sa.Column("run_id", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    # Each balance transaction is counted once across files, so overlapping days book nothing twice.
    op.create_table(
        "settlement_rows",
        sa.Column("balance_transaction_id", sa.Text, primary_key=True),
        sa.Column("row_digest", sa.Text, nullable=False),
        sa.Column("run_id", sa.Text, nullable=False),
        sa.Column("reporting_category", sa.Text, nullable=False),
        sa.Column("currency", sa.Text, nullable=False),
        sa.Column("gross_minor", sa.BigInteger, nullable=False),
        sa.Column("fee_minor", sa.BigInteger, nullable=False),
        sa.Column("our_reference", sa.Text, nullable=False, server_default=""),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    op.create_index("ix_settlement_rows_our_reference", "settlement_rows", ["our_reference"])
    op.create_table(
        "recon_mismatches",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("mismatch_id", sa.Text, nullable=False, unique=True),
        sa.Column("run_id", sa.Text, nullable=False),
        sa.Column("code", sa.Text, nullable=False),
        sa.Column("classification", sa.Text, nullable=False),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("balance_transaction_id", sa.Text, nullable=False),
        sa.Column("our_reference", sa.Text, nullable=False),
        sa.Column("currency", sa.Text, nullable=False),
        sa.Column("amount_minor", sa.BigInteger, nullable=False),
        sa.Column("differences", postgresql.JSONB, nullable=False),
        sa.Column("line", sa.Integer, nullable=False),
        sa.Column("assignee", sa.Text, nullable=True),
        sa.Column("resolution_code", sa.Text, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.CheckConstraint(
            "classification IN ('auto_fixable','manual','unclassified')", name="ck_recon_mismatches_class"
        ),
        sa.CheckConstraint("state IN ('open','auto_fixed','resolved')", name="ck_recon_mismatches_state"),
    )
    op.create_index("ix_recon_mismatches_run", "recon_mismatches", ["run_id", "id"])
    op.create_index("ix_recon_mismatches_open", "recon_mismatches", ["state", "classification", "code"])
    # Who did what to a mismatch, when and why; never updated.
    op.create_table(
        "recon_mismatch_actions",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("mismatch_id", sa.Text, nullable=False),
        sa.Column("actor", sa.Text, nullable=False),
        sa.Column("action", sa.Text, nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    op.create_index("ix_recon_mismatch_actions_mismatch", "recon_mismatch_actions", ["mismatch_id", "id"])


def downgrade() -> None:
    op.drop_table("recon_mismatch_actions")
    op.drop_table("recon_mismatches")
    op.drop_table("settlement_rows")
    op.drop_table("settlement_files")
    for column in ("error", "report", "file_sha256"):
        op.drop_column("reconciliation_runs", column)
