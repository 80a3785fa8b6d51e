"""A tiny consumer service for the backbone tests: a demo effect table and a handler with
switchable failures. Also runnable as a process (``python tests/events/events_demo.py``) so the
tests can SIGKILL a real consumer."""

from __future__ import annotations

import asyncio
import os
import sys

import sqlalchemy as sa
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncConnection

from svckit.events import Consumer, Event, EventsSettings, TerminalError, TransientError, Waiting

DEMO_DDL = [
    # No unique constraint on purpose: a second effect of one event would show up as a second row.
    """CREATE TABLE IF NOT EXISTS demo_effects (
         consumer_group text NOT NULL, event_id text NOT NULL, aggregate_id text NOT NULL,
         n bigint NOT NULL, applied_at timestamptz NOT NULL DEFAULT clock_timestamp())""",
    # Events listed here fail (transiently or terminally) in one group ('*': all) until the row is
    # deleted ("the fix").
    """CREATE TABLE IF NOT EXISTS demo_faults (
         event_id text NOT NULL, consumer_group text NOT NULL, kind text NOT NULL,
         PRIMARY KEY (event_id, consumer_group))""",
]


def handler_for(group: str):
    async def handle(conn: AsyncConnection, event: Event) -> None:
        fault = (
            await conn.execute(
                sa.text("SELECT kind FROM demo_faults WHERE event_id = :id AND consumer_group IN ('*', :g)"),
                {"id": event.event_id, "g": group},
            )
        ).scalar()
        if fault == "transient":
            raise TransientError(f"dependency down for {event.event_id}")
        if fault == "waiting":
            raise Waiting(f"{event.event_id} waits for another event")
        if fault == "terminal":
            raise TerminalError(f"cannot process {event.event_id}")
        if fault == "once" and event.attempt == 1:
            raise TransientError("first attempt fails")
        await conn.execute(
            sa.text(
                "INSERT INTO demo_effects (consumer_group, event_id, aggregate_id, n) VALUES (:g, :e, :a, :n)"
            ),
            {"g": group, "e": event.event_id, "a": event.aggregate_id, "n": int(event.payload.get("n", 0))},
        )

    return handle


async def main() -> None:
    from svckit.db import create_engine

    database_url, group, name = sys.argv[1], sys.argv[2], sys.argv[3]
    settings = EventsSettings()  # namespace, redis url and timings from EVENTS_* variables
    engine = create_engine(database_url, pool_size=2)
    redis = Redis.from_url(settings.redis_url, decode_responses=True)
    consumer = Consumer(
        redis=redis, engine=engine, settings=settings, group=group, handler=handler_for(group), name=name
    )
    print("consumer started", os.getpid(), flush=True)
    await consumer.run()


if __name__ == "__main__":
    asyncio.run(main())
