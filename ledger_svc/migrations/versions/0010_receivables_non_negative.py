"""Seller receivables (a seller's debts) get the non-negative rule, like seller payables: a pay-out
netting a debt and an operator writing it off at the same moment could otherwise both take it.
Accounts created from now on get it by prefix (``NON_NEGATIVE_PREFIXES``); this sets it on those that
exist and are not below zero (one that is stays as it is, for a person to look at: ``VerifyLedger``
reports only flagged accounts).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


# A bound pattern: the name's colons would read as bind parameters in SQL text.
RECEIVABLES = "asset:seller\\_receivable:%"


def upgrade() -> None:
    op.execute(
        sa.text(
            "UPDATE accounts SET non_negative = true"
            " WHERE name LIKE :pattern AND NOT non_negative AND debits_posted >= credits_posted"
        ).bindparams(pattern=RECEIVABLES)
    )


def downgrade() -> None:
    op.execute(
        sa.text("UPDATE accounts SET non_negative = false WHERE name LIKE :pattern").bindparams(
            pattern=RECEIVABLES
        )
    )
