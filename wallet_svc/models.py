"""Tables of the wallet database (SQLAlchemy Core)."""

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
