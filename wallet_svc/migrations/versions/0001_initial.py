"""Wallets and idempotency keys.

Revision ID: 0001
Revises:
Create Date: 2026-11-21
"""

import sqlalchemy as sa
from alembic import op

from svckit.idempotency import create_table_in_migration

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_table_in_migration()
    op.create_table(
        "wallets",
        sa.Column("seller_id", sa.Text, primary_key=True),
        sa.Column("currency", sa.CHAR(3), primary_key=True),
        sa.Column("available_minor", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("reserved_minor", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.CheckConstraint("available_minor >= 0", name="ck_wallets_available_non_negative"),
        sa.CheckConstraint("reserved_minor >= 0", name="ck_wallets_reserved_non_negative"),
    )


def downgrade() -> None:
    op.drop_table("wallets")
    op.drop_table("idempotency_keys")
