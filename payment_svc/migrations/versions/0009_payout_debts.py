"""Pay-outs, second pass. Seller debts netted by a pay-out: what it took off the seller's balance for their debt
(``asset:seller_receivable``, left by a refund larger than the wallet) before paying the rest, and the
ledger transaction that did it, so a resumed pay-out nets once. And the scheduler's marks: one row per
(period, anchor day) it started a run for; its primary key is what keeps two replicas from both
starting one.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "payouts", sa.Column("debt_netted_minor", sa.BigInteger, nullable=False, server_default="0")
    )
    op.add_column("payouts", sa.Column("net_tx_id", sa.BigInteger, nullable=True))
    op.create_check_constraint("payouts_debt_netted_not_negative", "payouts", "debt_netted_minor >= 0")
    op.create_table(
        "payout_schedule_marks",
        sa.Column("period", sa.Text, primary_key=True),
        sa.Column("anchor_day", sa.SmallInteger, primary_key=True),
        sa.Column("run_id", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )


def downgrade() -> None:
    op.drop_table("payout_schedule_marks")
    op.drop_constraint("payouts_debt_netted_not_negative", "payouts", type_="check")
    op.drop_column("payouts", "net_tx_id")
    op.drop_column("payouts", "debt_netted_minor")
