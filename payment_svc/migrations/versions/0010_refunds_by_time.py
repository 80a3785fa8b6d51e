"""Index refunds by (created_at, refund_id): every order's refunds of a window (ListRefunds with a
create-time window, reconciliation's checks of a day) without scanning them all.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06
"""

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_refunds_created_at_refund_id", "refunds", ["created_at", "refund_id"], if_not_exists=True
    )


def downgrade() -> None:
    op.drop_index("ix_refunds_created_at_refund_id", table_name="refunds")
