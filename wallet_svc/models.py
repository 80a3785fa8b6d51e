"""Tables of the wallet database (SQLAlchemy Core). Constraints and triggers live in the migrations."""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

wallets = sa.Table(
    "wallets",
    metadata,
    sa.Column("seller_id", sa.Text, primary_key=True),
    sa.Column("currency", sa.CHAR(3), primary_key=True, comment="ISO 4217 code"),
    sa.Column("available_minor", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("reserved_minor", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.CheckConstraint("available_minor >= 0", name="ck_wallets_available_non_negative"),
    sa.CheckConstraint("reserved_minor >= 0", name="ck_wallets_reserved_non_negative"),
)

reservations = sa.Table(
    "reservations",
    metadata,
    sa.Column("id", sa.Text, primary_key=True, comment="rsv_<32 hex>, server-assigned"),
    sa.Column("seller_id", sa.Text, nullable=False),
    sa.Column("currency", sa.CHAR(3), nullable=False),
    sa.Column("state", sa.Text, nullable=False, comment="OPEN, PARTIALLY_SETTLED or CLOSED; forward-only"),
    sa.Column("amount_minor", sa.BigInteger, nullable=False, comment="amount originally reserved"),
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
    sa.ForeignKeyConstraint(["seller_id", "currency"], ["wallets.seller_id", "wallets.currency"]),
)

wallet_movements = sa.Table(
    "wallet_movements",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("seller_id", sa.Text, nullable=False),
    sa.Column("currency", sa.CHAR(3), nullable=False),
    sa.Column("kind", sa.Text, nullable=False, comment="CREDIT, DEBIT, RESERVE, RELEASE or CAPTURE"),
    sa.Column("amount_minor", sa.BigInteger, nullable=False, comment="always positive"),
    sa.Column("available_delta_minor", sa.BigInteger, nullable=False, comment="signed change of available"),
    sa.Column("reserved_delta_minor", sa.BigInteger, nullable=False, comment="signed change of reserved"),
    sa.Column("available_after_minor", sa.BigInteger, nullable=False),
    sa.Column("reserved_after_minor", sa.BigInteger, nullable=False),
    sa.Column("reservation_id", sa.Text, sa.ForeignKey("reservations.id")),
    sa.Column("reference_kind", sa.Text, nullable=False),
    sa.Column("reference_id", sa.Text, nullable=False),
    sa.Column("idempotency_key", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.ForeignKeyConstraint(["seller_id", "currency"], ["wallets.seller_id", "wallets.currency"]),
)
