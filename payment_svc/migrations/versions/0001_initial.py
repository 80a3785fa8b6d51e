"""Payment events, payment orders and idempotency keys.

Revision ID: 0001
Revises:
Create Date: 2026-11-21
"""

import sqlalchemy as sa
from alembic import op

from svckit.idempotency import create_table_in_migration

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_table_in_migration()
    op.create_table(
        "payment_events",
        sa.Column("checkout_id", sa.Text, primary_key=True),
        sa.Column("buyer_info", sa.JSON, nullable=False, server_default="{}"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    op.create_table(
        "payment_orders",
        sa.Column("payment_order_id", sa.Text, primary_key=True),
        sa.Column("checkout_id", sa.Text, sa.ForeignKey("payment_events.checkout_id"), nullable=False),
        sa.Column("seller_account", sa.Text, nullable=False),
        sa.Column("amount_minor", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.CHAR(3), nullable=False),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.CheckConstraint("amount_minor > 0", name="ck_payment_orders_amount_positive"),
    )
    op.create_index("ix_payment_orders_checkout_id", "payment_orders", ["checkout_id"])


def downgrade() -> None:
    op.drop_table("payment_orders")
    op.drop_table("payment_events")
    op.drop_table("idempotency_keys")
