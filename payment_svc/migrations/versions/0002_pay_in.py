"""Pay-in: checkout modes and PSP references, order details, append-only order history, refunds.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_EVENT_COLUMNS: list[sa.Column] = [
    sa.Column("buyer_id", sa.Text, nullable=False, server_default=""),
    sa.Column("mode", sa.Text, nullable=False, server_default="HOSTED"),
    sa.Column("currency", sa.CHAR(3), nullable=False, server_default="USD"),
    sa.Column("total_minor", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("success_url", sa.Text, nullable=False, server_default=""),
    sa.Column("cancel_url", sa.Text, nullable=False, server_default=""),
    sa.Column("payment_method", sa.Text, nullable=False, server_default=""),
    sa.Column("idempotency_key", sa.Text, nullable=False, server_default=""),
    sa.Column("fingerprint", sa.LargeBinary, nullable=True),
    sa.Column("psp_session_id", sa.Text, nullable=True),
    sa.Column("hosted_page_url", sa.Text, nullable=False, server_default=""),
    sa.Column("risk_verdict", sa.Text, nullable=False, server_default=""),
    sa.Column("risk_rule", sa.Text, nullable=False, server_default=""),
]

_ORDER_COLUMNS: list[sa.Column] = [
    sa.Column("psp_reference", sa.Text, nullable=True),
    sa.Column("pending_reason", sa.Text, nullable=True),
    sa.Column("failure_code", sa.Text, nullable=True),
    sa.Column("failure_message", sa.Text, nullable=True),
    sa.Column("next_action_url", sa.Text, nullable=True),
    sa.Column("commission_minor", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("refunded_minor", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("refund_reserved_minor", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("wallet_updated", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("ledger_updated", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("janitor_attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("next_check_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("alerted_at", sa.DateTime(timezone=True), nullable=True),
]

_STATES = "'NOT_STARTED','EXECUTING','PENDING','SUCCESS','FAILED','UNKNOWN','PARTIALLY_REFUNDED','REFUNDED'"


def upgrade() -> None:
    for col in _EVENT_COLUMNS:
        op.add_column("payment_events", col)
    op.create_unique_constraint("uq_payment_events_psp_session_id", "payment_events", ["psp_session_id"])
    op.create_check_constraint("ck_payment_events_mode", "payment_events", "mode IN ('HOSTED','DIRECT')")
    for col in _ORDER_COLUMNS:
        op.add_column("payment_orders", col)
    op.create_index("ix_payment_orders_psp_reference", "payment_orders", ["psp_reference"])
    # The janitor's scan: uncertain orders due for a look.
    op.create_index(
        "ix_payment_orders_uncertain_due",
        "payment_orders",
        ["next_check_at"],
        postgresql_where=sa.text("state IN ('NOT_STARTED','EXECUTING','PENDING','UNKNOWN')"),
    )
    op.create_check_constraint("ck_payment_orders_state", "payment_orders", f"state IN ({_STATES})")
    op.create_check_constraint(
        "ck_payment_orders_refunds_within_amount",
        "payment_orders",
        "refunded_minor >= 0 AND refund_reserved_minor >= 0 AND refunded_minor + refund_reserved_minor <= amount_minor",
    )
    op.create_check_constraint(
        "ck_payment_orders_commission",
        "payment_orders",
        "commission_minor >= 0 AND commission_minor <= amount_minor",
    )
    op.create_table(
        "order_transitions",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("payment_order_id", sa.Text, nullable=False),
        sa.Column("from_state", sa.Text, nullable=True),
        sa.Column("to_state", sa.Text, nullable=False),
        sa.Column("cause", sa.Text, nullable=False),
        sa.Column("detail", sa.Text, nullable=False, server_default=""),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    op.create_index("ix_order_transitions_payment_order_id", "order_transitions", ["payment_order_id", "id"])
    # History is evidence: nobody edits it, not even by hand.
    op.execute(
        """
        CREATE FUNCTION order_transitions_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          RAISE EXCEPTION 'order_transitions is append-only (% refused)', TG_OP USING ERRCODE = 'restrict_violation';
        END $$;
        CREATE TRIGGER order_transitions_no_update_delete BEFORE UPDATE OR DELETE ON order_transitions
          FOR EACH ROW EXECUTE FUNCTION order_transitions_append_only();
        """
    )
    op.create_table(
        "refunds",
        sa.Column("refund_id", sa.Text, primary_key=True),
        sa.Column(
            "payment_order_id", sa.Text, sa.ForeignKey("payment_orders.payment_order_id"), nullable=False
        ),
        sa.Column("amount_minor", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.CHAR(3), nullable=False),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("reason", sa.Text, nullable=True),
        sa.Column("psp_reference", sa.Text, nullable=True, unique=True),
        sa.Column("failure_reason", sa.Text, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.CheckConstraint("amount_minor > 0", name="ck_refunds_amount_positive"),
        sa.CheckConstraint("state IN ('PENDING','SUCCEEDED','FAILED')", name="ck_refunds_state"),
    )
    op.create_index("ix_refunds_payment_order_id", "refunds", ["payment_order_id"])


def downgrade() -> None:
    op.drop_table("refunds")
    op.execute("DROP TRIGGER order_transitions_no_update_delete ON order_transitions")
    op.execute("DROP FUNCTION order_transitions_append_only()")
    op.drop_table("order_transitions")
    for name in (
        "ck_payment_orders_commission",
        "ck_payment_orders_refunds_within_amount",
        "ck_payment_orders_state",
    ):
        op.drop_constraint(name, "payment_orders")
    op.drop_index("ix_payment_orders_uncertain_due", "payment_orders")
    op.drop_index("ix_payment_orders_psp_reference", "payment_orders")
    for col in _ORDER_COLUMNS:
        op.drop_column("payment_orders", col.name)
    op.drop_constraint("ck_payment_events_mode", "payment_events")
    op.drop_constraint("uq_payment_events_psp_session_id", "payment_events")
    for col in _EVENT_COLUMNS:
        op.drop_column("payment_events", col.name)
