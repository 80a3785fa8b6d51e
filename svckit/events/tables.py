"""The backbone's two tables, each in the database of the service that uses it.

``event_outbox`` (producers): events written in the transaction of the state change, published by
the relay in ``seq`` order per partition. ``processed_events`` (consumers): one row per (group, event)
written in the transaction of the handler's effect, so a redelivered event has no second effect.

Create them from a service's Alembic revision with :func:`create_outbox_in_migration` /
:func:`create_processed_events_in_migration`, or with :func:`create_all` (tests, benchmarks).
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.ext.asyncio import AsyncConnection

OUTBOX_PARTITIONS = 16
"""Events are spread over this many relay partitions by a hash of their aggregate id. A relay
publishes a partition only while holding its advisory lock, so two relays never interleave one
aggregate's events. Fixed: changing it would move an aggregate to another partition mid-stream."""

NOTIFY_CHANNEL = "event_outbox"

events_metadata = sa.MetaData()

event_outbox = sa.Table(
    "event_outbox",
    events_metadata,
    sa.Column("seq", sa.BigInteger, sa.Identity(always=True), primary_key=True, comment="Publish order"),
    sa.Column("event_id", UUID(as_uuid=False), nullable=False, unique=True),
    sa.Column("stream", sa.Text, nullable=False, comment="Full stream key, e.g. {payments}:events"),
    sa.Column("aggregate_id", sa.Text, nullable=False),
    sa.Column("partition", sa.SmallInteger, nullable=False, comment="hash(aggregate_id) mod partitions"),
    sa.Column("type", sa.Text, nullable=False),
    sa.Column("payload", JSONB, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
)
sa.Index(
    "ix_event_outbox_unpublished",
    event_outbox.c.partition,
    event_outbox.c.seq,
    postgresql_where=event_outbox.c.published_at.is_(None),
)
sa.Index(
    "ix_event_outbox_published_at",
    event_outbox.c.published_at,
    postgresql_where=event_outbox.c.published_at.is_not(None),
)

processed_events = sa.Table(
    "processed_events",
    events_metadata,
    sa.Column("consumer_group", sa.Text, primary_key=True),
    sa.Column("event_id", sa.Text, primary_key=True),
    sa.Column("processed_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
)
sa.Index("ix_processed_events_processed_at", processed_events.c.processed_at)

# A statement-level trigger wakes the relay (LISTEN event_outbox) when the producer commits;
# PostgreSQL delivers notifications only on commit and folds duplicates within one transaction.
_NOTIFY_FUNCTION = f"""
CREATE OR REPLACE FUNCTION event_outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('{NOTIFY_CHANNEL}', '');
  RETURN NULL;
END $$
"""
_NOTIFY_TRIGGER = """
CREATE TRIGGER event_outbox_notify AFTER INSERT ON event_outbox
FOR EACH STATEMENT EXECUTE FUNCTION event_outbox_notify()
"""


def create_outbox_in_migration() -> None:
    """Create ``event_outbox`` (and its notify trigger) from a producer service's Alembic revision."""
    from alembic import op

    event_outbox.create(op.get_bind())  # with its indexes
    op.execute(_NOTIFY_FUNCTION)
    op.execute(_NOTIFY_TRIGGER)


def drop_outbox_in_migration() -> None:
    from alembic import op

    op.execute("DROP TABLE IF EXISTS event_outbox")
    op.execute("DROP FUNCTION IF EXISTS event_outbox_notify()")


def create_processed_events_in_migration() -> None:
    """Create ``processed_events`` from a consumer service's Alembic revision."""
    from alembic import op

    processed_events.create(op.get_bind())  # with its index


async def create_all(conn: AsyncConnection) -> None:
    """Create both tables if missing (tests and benchmarks; services use the migration helpers)."""
    await conn.run_sync(events_metadata.create_all)
    await conn.exec_driver_sql(_NOTIFY_FUNCTION)
    await conn.exec_driver_sql("DROP TRIGGER IF EXISTS event_outbox_notify ON event_outbox")
    await conn.exec_driver_sql(_NOTIFY_TRIGGER)
