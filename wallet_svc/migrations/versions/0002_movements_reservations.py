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
CREATE FUNCTION refuse_history_edit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'restrict_violation';
END;
$$
"""

# Reservations change, but only forward: parts only grow, the identity and amount never change,
# a CLOSED reservation never changes again, and no reservation is deleted (Blnk #182).
RESERVATION_FORWARD_ONLY_FUNCTION = """
CREATE FUNCTION reservations_forward_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'reservations are never deleted' USING ERRCODE = 'restrict_violation';
    END IF;
    IF OLD.state = 'CLOSED'
       OR NEW.id <> OLD.id OR NEW.seller_id <> OLD.seller_id OR NEW.currency <> OLD.currency
       OR NEW.amount_minor <> OLD.amount_minor
       OR NEW.reference_kind <> OLD.reference_kind OR NEW.reference_id <> OLD.reference_id
       OR NEW.released_minor < OLD.released_minor OR NEW.captured_minor < OLD.captured_minor
       OR (OLD.state = 'PARTIALLY_SETTLED' AND NEW.state = 'OPEN') THEN
        RAISE EXCEPTION 'reservation % may only move forward', OLD.id USING ERRCODE = 'restrict_violation';
    END IF;
    RETURN NEW;
END;
$$
"""


def upgrade() -> None:
    op.execute(APPEND_ONLY_FUNCTION)
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
    op.execute(RESERVATION_FORWARD_ONLY_FUNCTION)
    op.execute(
        "CREATE TRIGGER reservations_forward_only BEFORE UPDATE OR DELETE ON reservations"
        " FOR EACH ROW EXECUTE FUNCTION reservations_forward_only()"
    )
    op.execute(
        "CREATE TRIGGER reservations_no_truncate BEFORE TRUNCATE ON reservations"
        " FOR EACH STATEMENT EXECUTE FUNCTION refuse_history_edit()"
    )

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

    op.execute(
        "CREATE TRIGGER wallet_movements_no_update_delete BEFORE UPDATE OR DELETE ON wallet_movements"
        " FOR EACH ROW EXECUTE FUNCTION refuse_history_edit()"
    )
    op.execute(
        "CREATE TRIGGER wallet_movements_no_truncate BEFORE TRUNCATE ON wallet_movements"
        " FOR EACH STATEMENT EXECUTE FUNCTION refuse_history_edit()"
    )


def downgrade() -> None:
    op.drop_table("wallet_movements")
    op.drop_table("reservations")
    op.execute("DROP FUNCTION reservations_forward_only()")
    op.execute("DROP FUNCTION refuse_history_edit()")
