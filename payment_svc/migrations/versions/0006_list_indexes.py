"""Indexes for listing payment orders newest first (GET /v1/payments, ListPaymentOrders).

The listing orders by (created_at, payment_order_id) descending and pages by keyset. Without an index
on that pair every page sorted the whole table; a seller's listing gets its own, led by the seller, so
its pages read only its rows. A checkout's orders (few) use the checkout index that exists, a buyer's
the risk check's (buyer_id, created_at) index on payment_events. Every index of payment_orders gets a
new entry on each state change (the janitor's partial index names state, so those updates are never
heap-only), so the listing adds two, not one per filter: a state filter walks the newest-first index
and skips other states.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_payment_orders_created", "payment_orders", ["created_at", "payment_order_id"])
    op.create_index(
        "ix_payment_orders_seller_created",
        "payment_orders",
        ["seller_account", "created_at", "payment_order_id"],
    )


def downgrade() -> None:
    op.drop_index("ix_payment_orders_seller_created", table_name="payment_orders")
    op.drop_index("ix_payment_orders_created", table_name="payment_orders")
