"""Tables of the payments database (SQLAlchemy Core). Amounts are BIGINT minor units with a CHAR(3) code."""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()


def settlement_columns() -> list[sa.Column]:
    """The settlement attempt of a pay-in or refund (``payment_svc.settlement``); new objects each call,
    as a Column belongs to one table."""
    return [
        sa.Column(
            "settlement_attempt",
            sa.Integer,
            nullable=False,
            server_default="0",
            comment="Attempt whose idempotency keys the next settlement try uses (payment_svc.settlement)",
        ),
        sa.Column(
            "settlement_undo_attempt",
            sa.Integer,
            nullable=True,
            comment="An attempt whose applied first half must be undone before the next try",
        ),
    ]


payment_events = sa.Table(
    "payment_events",
    metadata,
    sa.Column("checkout_id", sa.Text, primary_key=True, comment="Client-supplied id of the checkout"),
    sa.Column("buyer_info", sa.JSON, nullable=False, server_default="{}"),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("buyer_id", sa.Text, nullable=False, server_default=""),
    sa.Column("mode", sa.Text, nullable=False, server_default="HOSTED", comment="HOSTED or DIRECT"),
    sa.Column("currency", sa.CHAR(3), nullable=False, server_default="USD"),
    sa.Column("total_minor", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("success_url", sa.Text, nullable=False, server_default=""),
    sa.Column("cancel_url", sa.Text, nullable=False, server_default=""),
    sa.Column(
        "payment_method", sa.Text, nullable=False, server_default="", comment="PSP token (direct mode)"
    ),
    sa.Column(
        "idempotency_key",
        sa.Text,
        nullable=False,
        server_default="",
        comment="Key of the request that created it",
    ),
    sa.Column("fingerprint", sa.LargeBinary, nullable=True),
    sa.Column(
        "psp_session_id", sa.Text, nullable=True, unique=True, comment="Checkout Session (hosted mode)"
    ),
    sa.Column("hosted_page_url", sa.Text, nullable=False, server_default=""),
    sa.Column("risk_verdict", sa.Text, nullable=False, server_default=""),
    sa.Column("risk_rule", sa.Text, nullable=False, server_default=""),
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
    sa.Column("psp_reference", sa.Text, nullable=True, index=True, comment="PaymentIntent id"),
    sa.Column("pending_reason", sa.Text, nullable=True),
    sa.Column("failure_code", sa.Text, nullable=True),
    sa.Column("failure_message", sa.Text, nullable=True),
    sa.Column("next_action_url", sa.Text, nullable=True),
    sa.Column("commission_minor", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("refunded_minor", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column(
        "refund_reserved_minor",
        sa.BigInteger,
        nullable=False,
        server_default="0",
        comment="Refunds requested from the PSP and not yet final",
    ),
    sa.Column("wallet_updated", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("ledger_updated", sa.Boolean, nullable=False, server_default=sa.false()),
    *settlement_columns(),
    sa.Column("janitor_attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column(
        "next_check_at", sa.DateTime(timezone=True), nullable=True, comment="When the janitor looks again"
    ),
    sa.Column(
        "alerted_at", sa.DateTime(timezone=True), nullable=True, comment="When it was reported past deadline"
    ),
    sa.Column(
        "line_items",
        sa.JSON,
        nullable=False,
        server_default="[]",
        comment='What was bought: [{"name": ..., "quantity": ...}], [] when none was given',
    ),
)

# The risk check's velocity: a buyer's checkouts in a recent window, answered from the index alone.
sa.Index(
    "ix_payment_events_buyer_created",
    payment_events.c.buyer_id,
    payment_events.c.created_at,
    postgresql_include=["total_minor"],
)

# Listings newest first, all orders or one seller's (migration 0006 says why there is none on state).
sa.Index("ix_payment_orders_created", payment_orders.c.created_at, payment_orders.c.payment_order_id)
sa.Index(
    "ix_payment_orders_seller_created",
    payment_orders.c.seller_account,
    payment_orders.c.created_at,
    payment_orders.c.payment_order_id,
)

order_transitions = sa.Table(
    "order_transitions",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("payment_order_id", sa.Text, nullable=False, index=True),
    sa.Column("from_state", sa.Text, nullable=True),
    sa.Column("to_state", sa.Text, nullable=False),
    sa.Column("cause", sa.Text, nullable=False),
    sa.Column("detail", sa.Text, nullable=False, server_default=""),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
)

refunds = sa.Table(
    "refunds",
    metadata,
    sa.Column("refund_id", sa.Text, primary_key=True),
    sa.Column(
        "payment_order_id",
        sa.Text,
        sa.ForeignKey("payment_orders.payment_order_id"),
        nullable=False,
        index=True,
    ),
    sa.Column("amount_minor", sa.BigInteger, nullable=False),
    sa.Column("currency", sa.CHAR(3), nullable=False),
    sa.Column("state", sa.Text, nullable=False),
    sa.Column("reason", sa.Text, nullable=True),
    sa.Column("psp_reference", sa.Text, nullable=True, unique=True),
    sa.Column("failure_reason", sa.Text, nullable=True),
    *settlement_columns(),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
)

disputes = sa.Table(
    "disputes",
    metadata,
    sa.Column("dispute_id", sa.Text, primary_key=True, comment="The PSP's dispute id (dp_...)"),
    sa.Column(
        "checkout_id", sa.Text, sa.ForeignKey("payment_events.checkout_id"), nullable=False, index=True
    ),
    sa.Column("payment_intent_id", sa.Text, nullable=False),
    sa.Column("amount_minor", sa.BigInteger, nullable=False),
    sa.Column("currency", sa.CHAR(3), nullable=False),
    sa.Column("status", sa.Text, nullable=False, comment="The PSP's; won, lost and warning_closed are final"),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("evidence_due_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("last_event_id", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
)
