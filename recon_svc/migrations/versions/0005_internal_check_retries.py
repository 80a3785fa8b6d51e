"""The retries of a settlement day's internal checks that failed at the end of its run.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # One row per settlement run whose end-of-run checks failed: claimed by one replica at a time and retried
    # after a doubling back-off (recon_svc/check_retries.py), until they pass or the back-off's cap is spent.
    op.create_table(
        "recon_check_retries",
        sa.Column("run_id", sa.Text, primary_key=True),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("window_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    op.create_index(
        "ix_recon_check_retries_due",
        "recon_check_retries",
        ["updated_at"],
        postgresql_where=sa.text("state IN ('failed', 'running')"),
    )


def downgrade() -> None:
    op.drop_index("ix_recon_check_retries_due", table_name="recon_check_retries")
    op.drop_table("recon_check_retries")
