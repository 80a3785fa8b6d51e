"""Settlement attempts: the keys of a settlement's wallet and ledger halves, and an undo still owed.

A settlement event applies two halves in two services. When the second half is refused, the first is
undone and the attempt number moves on, so a replay of the dead letter applies both halves again under
fresh keys, exactly once. ``settlement_undo_attempt`` names an attempt whose first half was applied and
must be undone before anything else (set before the undo, cleared after it, so a crash in between
still undoes it on redelivery).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_TABLES = ("payment_orders", "refunds")


def upgrade() -> None:
    for table in _TABLES:
        op.add_column(
            table,
            sa.Column(
                "settlement_attempt",
                sa.Integer,
                nullable=False,
                server_default="0",
                comment="Attempt whose idempotency keys the next settlement try uses (payment_svc.settlement)",
            ),
        )
        op.add_column(
            table,
            sa.Column(
                "settlement_undo_attempt",
                sa.Integer,
                nullable=True,
                comment="An attempt whose applied first half must be undone before the next try",
            ),
        )


def downgrade() -> None:
    for table in _TABLES:
        op.drop_column(table, "settlement_undo_attempt")
        op.drop_column(table, "settlement_attempt")
