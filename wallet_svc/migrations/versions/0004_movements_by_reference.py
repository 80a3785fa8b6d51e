"""Index a wallet's movements by reference id: an order's or refund's movements without scanning the
seller's whole history.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# ListMovements with reference_id (the console's order page) looks up the few movements of one
# order or refund in one wallet. ix_movements_wallet_id alone would walk the wallet's history newest
# first until it found them: for a seller with years of movements and an old order, the whole of it.
# Keyed (seller_id, currency, reference_id, id DESC), the look-up reads just those rows, already in
# the listing's order. One more B-tree on the append path; a movement write already updates two.
#
# A plain CREATE INDEX locks out writes to wallet_movements while it builds; on a large table build it
# by hand first with CREATE INDEX CONCURRENTLY under this name, and this step then finds it in place.


def upgrade() -> None:
    op.create_index(
        "ix_movements_wallet_reference",
        "wallet_movements",
        ["seller_id", "currency", "reference_id", sa.text("id DESC")],
        if_not_exists=True,
    )


def downgrade() -> None:
    op.drop_index("ix_movements_wallet_reference", table_name="wallet_movements")
