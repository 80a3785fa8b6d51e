"""Index movements by (created_at, id): every wallet's movements of a window (ListMovements with a
create-time window, reconciliation's per-record checks of a day) without scanning them all.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

# A plain CREATE INDEX locks out movements while it builds; on a large table build it by hand first
# with CREATE INDEX CONCURRENTLY under this name, and this step then finds it in place.


def upgrade() -> None:
    op.create_index(
        "ix_movements_created_at_id", "wallet_movements", ["created_at", "id"], if_not_exists=True
    )


def downgrade() -> None:
    op.drop_index("ix_movements_created_at_id", table_name="wallet_movements")
