"""Append-only wallet movements and payout reservations.

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

REFERENCE_KINDS = "('PAYMENT_ORDER','REFUND','PAYOUT','ADJUSTMENT')"

# Each kind moves money in exactly one way; the database refuses any other combination, so the
# stored deltas can be summed without trusting the code that wrote them.
KIND_DELTAS = """
    (kind = 'CREDIT'  AND available_delta_minor =  amount_minor AND reserved_delta_minor = 0)
 OR (kind = 'DEBIT'   AND available_delta_minor = -amount_minor AND reserved_delta_minor = 0)
 OR (kind = 'RESERVE' AND available_delta_minor = -amount_minor AND reserved_delta_minor =  amount_minor)
 OR (kind = 'RELEASE' AND available_delta_minor =  amount_minor AND reserved_delta_minor = -amount_minor)
 OR (kind = 'CAPTURE' AND available_delta_minor = 0             AND reserved_delta_minor = -amount_minor)
"""

APPEND_ONLY_FUNCTION = """
CREATE FUNCTION wallet_movements_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'wallet_movements is append-only: % refused', TG_OP
        USING ERRCODE = 'restrict_violation';
END;
$$
"""


def upgrade() -> None:
    op.create_table(
        "reservations",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("seller_id", sa.Text, nullable=False),
        sa.Column("currency", sa.CHAR(3), nullable=False),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("amount_minor", sa.BigInteger, nullable=False),
        sa.Column("released_minor", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("captured_minor", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column(
            "remaining_minor",
            sa.BigInteger,
            sa.Computed("amount_minor - released_minor - captured_minor", persisted=True),
            nullable=False,
        ),
        sa.Column("reference_kind", sa.Text, nullable=False),
        sa.Column("reference_id", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.ForeignKeyConstraint(
            ["seller_id", "currency"],
            ["wallets.seller_id", "wallets.currency"],
            name="fk_reservations_wallet",
        ),
        sa.CheckConstraint("amount_minor > 0", name="ck_reservations_amount_positive"),
        sa.CheckConstraint(
            "released_minor >= 0 AND captured_minor >= 0 AND released_minor + captured_minor <= amount_minor",
            name="ck_reservations_parts_within_amount",
        ),
        sa.CheckConstraint("state IN ('OPEN','PARTIALLY_SETTLED','CLOSED')", name="ck_reservations_state"),
        # The state is a function of the amounts; the database keeps the two from disagreeing.
        sa.CheckConstraint(
            "(state = 'OPEN') = (released_minor + captured_minor = 0)"
            " AND (state = 'CLOSED') = (released_minor + captured_minor = amount_minor)",
            name="ck_reservations_state_matches_amounts",
        ),
        sa.CheckConstraint(f"reference_kind IN {REFERENCE_KINDS}", name="ck_reservations_reference_kind"),
    )
    op.create_index("ix_reservations_wallet", "reservations", ["seller_id", "currency"])

    op.create_table(
        "wallet_movements",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("seller_id", sa.Text, nullable=False),
        sa.Column("currency", sa.CHAR(3), nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("amount_minor", sa.BigInteger, nullable=False),
        sa.Column("available_delta_minor", sa.BigInteger, nullable=False),
        sa.Column("reserved_delta_minor", sa.BigInteger, nullable=False),
        sa.Column("available_after_minor", sa.BigInteger, nullable=False),
        sa.Column("reserved_after_minor", sa.BigInteger, nullable=False),
        sa.Column(
            "reservation_id", sa.Text, sa.ForeignKey("reservations.id", name="fk_movements_reservation")
        ),
        sa.Column("reference_kind", sa.Text, nullable=False),
        sa.Column("reference_id", sa.Text, nullable=False),
        sa.Column("idempotency_key", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.ForeignKeyConstraint(
            ["seller_id", "currency"],
            ["wallets.seller_id", "wallets.currency"],
            name="fk_movements_wallet",
        ),
        sa.CheckConstraint("amount_minor > 0", name="ck_movements_amount_positive"),
        sa.CheckConstraint(
            "kind IN ('CREDIT','DEBIT','RESERVE','RELEASE','CAPTURE')", name="ck_movements_kind"
        ),
        sa.CheckConstraint(KIND_DELTAS, name="ck_movements_kind_deltas"),
        sa.CheckConstraint(
            "available_after_minor >= 0 AND reserved_after_minor >= 0", name="ck_movements_after_non_negative"
        ),
        sa.CheckConstraint(
            "(reservation_id IS NOT NULL) = (kind IN ('RESERVE','RELEASE','CAPTURE'))",
            name="ck_movements_reservation_for_holds",
        ),
        sa.CheckConstraint(f"reference_kind IN {REFERENCE_KINDS}", name="ck_movements_reference_kind"),
    )
    # Keyset pagination of a wallet's history, newest first.
    op.create_index(
        "ix_movements_wallet_id", "wallet_movements", ["seller_id", "currency", sa.text("id DESC")]
    )
    op.create_index("ix_movements_reservation", "wallet_movements", ["reservation_id"])

    op.execute(APPEND_ONLY_FUNCTION)
    op.execute(
        "CREATE TRIGGER wallet_movements_no_update_delete BEFORE UPDATE OR DELETE ON wallet_movements"
        " FOR EACH ROW EXECUTE FUNCTION wallet_movements_append_only()"
    )
    op.execute(
        "CREATE TRIGGER wallet_movements_no_truncate BEFORE TRUNCATE ON wallet_movements"
        " FOR EACH STATEMENT EXECUTE FUNCTION wallet_movements_append_only()"
    )


def downgrade() -> None:
    op.drop_table("wallet_movements")
    op.execute("DROP FUNCTION wallet_movements_append_only()")
    op.drop_table("reservations")
