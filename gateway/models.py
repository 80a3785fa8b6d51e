"""Tables of the gateway's own database (SQLAlchemy Core): API keys, console sessions and audit log."""

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

console_sessions = sa.Table(
    "console_sessions",
    metadata,
    sa.Column("token_hash", sa.Text, primary_key=True, comment="SHA-256 hex of the cookie; never the cookie"),
    sa.Column("key_id", sa.Text, sa.ForeignKey("api_keys.id"), nullable=False),
    sa.Column("csrf_token", sa.Text, nullable=False, comment="Synchronizer token every form must echo"),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True, comment="Set on sign-out"),
)

console_audit = sa.Table(
    "console_audit",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("key_id", sa.Text, nullable=False, comment="Who: the admin key the session signed in with"),
    sa.Column("key_name", sa.Text, nullable=False),
    sa.Column("action", sa.Text, nullable=False, comment="What, e.g. payment.refund"),
    sa.Column("target", sa.Text, nullable=False, server_default="", comment="The object acted on"),
    sa.Column("reason", sa.Text, nullable=False, server_default="", comment="Why, as the operator typed it"),
    sa.Column("outcome", sa.Text, nullable=False, server_default="requested"),
    sa.Column("detail", sa.Text, nullable=False, server_default=""),
)
