"""Index transactions by (posted_at, id): a window of the journal (ListTransactions with a post-time
window, reconciliation's per-record checks of a day) without scanning it whole.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06
"""

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

# A plain CREATE INDEX locks out postings while it builds; on a large journal build it by hand first
# with CREATE INDEX CONCURRENTLY under this name, and this step then finds it in place.


def upgrade() -> None:
    op.create_index("ix_transactions_posted_at_id", "transactions", ["posted_at", "id"], if_not_exists=True)


def downgrade() -> None:
    op.drop_index("ix_transactions_posted_at_id", table_name="transactions")
