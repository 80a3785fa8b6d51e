"""Tables of the payments database (SQLAlchemy Core)."""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

payment_events = sa.Table(
    "payment_events",
    metadata,
    sa.Column("checkout_id", sa.Text, primary_key=True, comment="Client-supplied id of the checkout"),
    sa.Column("buyer_info", sa.JSON, nullable=False, server_default="{}"),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
)

payment_orders = sa.Table(
    "payment_orders",
    metadata,
    sa.Column("payment_order_id", sa.Text, primary_key=True, comment="Client-supplied, globally unique"),
    sa.Column(
        "checkout_id", sa.Text, sa.ForeignKey("payment_events.checkout_id"), nullable=False, index=True
    ),
    sa.Column("seller_account", sa.Text, nullable=False),
    sa.Column("amount_minor", sa.BigInteger, nullable=False),
    sa.Column("currency", sa.CHAR(3), nullable=False),
    sa.Column("state", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.CheckConstraint("amount_minor > 0", name="ck_payment_orders_amount_positive"),
)
