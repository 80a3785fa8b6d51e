"""Line items: what the buyer bought in each payment order (name and quantity), as the client sent it.

Stored because the Checkout Session that shows them may be created after the request that carried them
(a resumed checkout, the janitor), and because the buyer's status page lists them.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "payment_orders",
        sa.Column(
            "line_items",
            sa.JSON,
            nullable=False,
            server_default="[]",
            comment='What was bought: [{"name": ..., "quantity": ...}], [] when none was given',
        ),
    )


def downgrade() -> None:
    op.drop_column("payment_orders", "line_items")
