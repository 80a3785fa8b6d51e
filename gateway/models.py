"""Tables of the gateway's own database (SQLAlchemy Core): API keys only."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

MIGRATIONS = Path(__file__).parent / "migrations"

metadata = sa.MetaData()

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", sa.Text, primary_key=True, comment="Public identifier, e.g. key_3f9a0c1b2d4e"),
    sa.Column("name", sa.Text, nullable=False, comment="Who or what uses the key"),
    sa.Column(
        "key_hash",
        sa.Text,
        nullable=False,
        unique=True,
        comment="SHA-256 hex of the whole key; the key itself is never stored",
    ),
    sa.Column("key_prefix", sa.Text, nullable=False, comment="First characters, to recognise a key in lists"),
    sa.Column("scopes", postgresql.ARRAY(sa.Text), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
)
