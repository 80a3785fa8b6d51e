"""The migration helpers create working tables from inside an Alembic revision."""

from __future__ import annotations

import asyncio
from typing import cast

import sqlalchemy as sa
from alembic.migration import MigrationContext
from alembic.operations import Operations
from sqlalchemy.engine import make_url

from svckit.db import drop_database, ensure_database
from svckit.events import (
    create_outbox_in_migration,
    create_processed_events_in_migration,
)
from svckit.events.tables import drop_outbox_in_migration


def _migrate(url: str) -> dict[str, list[str]]:
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn, Operations.context(MigrationContext.configure(conn)):
            create_outbox_in_migration()
            create_processed_events_in_migration()
        with engine.begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO event_outbox (event_id, stream, aggregate_id, partition, type, payload) "
                    "VALUES (gen_random_uuid(), 'stream-key', 'a', 0, 't', '{}')"
                )
            )
            conn.execute(sa.text("INSERT INTO processed_events (consumer_group, event_id) VALUES ('g', 'e')"))
            inspector = sa.inspect(conn)
            found = {
                # PostgreSQL indexes always have a name; the reflection type allows None.
                "outbox_indexes": sorted(cast(str, i["name"]) for i in inspector.get_indexes("event_outbox")),
                "triggers": [
                    r[0]
                    for r in conn.execute(
                        sa.text("SELECT tgname FROM pg_trigger WHERE tgrelid = 'event_outbox'::regclass")
                    )
                ],
                "processed_pk": inspector.get_pk_constraint("processed_events")["constrained_columns"],
            }
        with engine.begin() as conn, Operations.context(MigrationContext.configure(conn)):
            drop_outbox_in_migration()
        with engine.connect() as conn:
            found["after_downgrade"] = sa.inspect(conn).get_table_names()
        return found
    finally:
        engine.dispose()


async def test_migration_helpers_create_the_tables_indexes_and_notify_trigger(infra):
    url = make_url(infra.database_url_for(f"{infra.prefix}_events_migration"))
    plain = url.render_as_string(hide_password=False)
    ensure_database(plain)
    try:
        found = await asyncio.to_thread(
            _migrate, url.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
        )
    finally:
        drop_database(plain)
    assert "ix_event_outbox_unpublished" in found["outbox_indexes"]
    assert "ix_event_outbox_published_at" in found["outbox_indexes"]
    assert found["triggers"] == ["event_outbox_notify"]
    assert found["processed_pk"] == ["consumer_group", "event_id"]
    assert found["after_downgrade"] == ["processed_events"]
