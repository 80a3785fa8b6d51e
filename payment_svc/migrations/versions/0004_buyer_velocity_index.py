"""Index for the risk check's buyer velocity (checkouts and amount of one buyer in a recent window).

Without it every checkout scanned all of payment_events: the check got slower with every checkout
ever taken.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-21
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_payment_events_buyer_created",
        "payment_events",
        ["buyer_id", "created_at"],
        postgresql_include=["total_minor"],
    )


def downgrade() -> None:
    op.drop_index("ix_payment_events_buyer_created", table_name="payment_events")
