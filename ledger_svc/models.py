"""Tables of the ledger database (SQLAlchemy Core)."""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

accounts = sa.Table(
    "accounts",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("name", sa.Text, nullable=False, unique=True, comment="type:purpose[:id]"),
    sa.Column("type", sa.Text, nullable=False, comment="asset, liability, equity, revenue or expense"),
    sa.Column("currency", sa.CHAR(3), nullable=False, comment="ISO 4217 code"),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
)
