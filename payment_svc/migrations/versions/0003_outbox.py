"""Event outbox (settlement events) and the settlement consumer's processed-events record.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21
"""

from alembic import op

from svckit.events import create_outbox_in_migration, create_processed_events_in_migration
from svckit.events.tables import drop_outbox_in_migration

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_outbox_in_migration()
    create_processed_events_in_migration()


def downgrade() -> None:
    op.drop_table("processed_events")
    drop_outbox_in_migration()
