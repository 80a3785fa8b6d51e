"""Reconciliation runs record what they compared, when they finished, their outcome and counts.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "reconciliation_runs",
        sa.Column("kind", sa.Text, nullable=False, server_default="SETTLEMENT_FILE"),
    )
    op.create_check_constraint(
        "ck_reconciliation_runs_kind", "reconciliation_runs", "kind IN ('SETTLEMENT_FILE','WALLET_LEDGER')"
    )
    # A wallet-ledger run compares balances at one moment: it has no settlement interval.
    op.alter_column("reconciliation_runs", "interval_start", nullable=True)
    op.alter_column("reconciliation_runs", "interval_end", nullable=True)
    op.add_column("reconciliation_runs", sa.Column("finished_at", sa.DateTime(timezone=True)))
    op.add_column("reconciliation_runs", sa.Column("ok", sa.Boolean))
    op.add_column("reconciliation_runs", sa.Column("wallets_checked", sa.BigInteger))
    op.add_column("reconciliation_runs", sa.Column("accounts_checked", sa.BigInteger))
    op.add_column("reconciliation_runs", sa.Column("mismatch_count", sa.BigInteger))
    op.add_column("reconciliation_runs", sa.Column("failure_reason", sa.Text))
    # A finished run says when; a running one does not.
    op.create_check_constraint(
        "ck_reconciliation_runs_finished",
        "reconciliation_runs",
        "(state = 'RUNNING') = (finished_at IS NULL)",
    )


def downgrade() -> None:
    op.drop_constraint("ck_reconciliation_runs_finished", "reconciliation_runs")
    for column in (
        "failure_reason",
        "mismatch_count",
        "accounts_checked",
        "wallets_checked",
        "ok",
        "finished_at",
    ):
        op.drop_column("reconciliation_runs", column)
    op.execute("DELETE FROM reconciliation_runs WHERE interval_start IS NULL OR interval_end IS NULL")
    op.alter_column("reconciliation_runs", "interval_end", nullable=False)
    op.alter_column("reconciliation_runs", "interval_start", nullable=False)
    op.drop_constraint("ck_reconciliation_runs_kind", "reconciliation_runs")
    op.drop_column("reconciliation_runs", "kind")
