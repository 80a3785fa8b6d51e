"""Consumer process of bench_events.py: applies each event as one row in ``bench_effects``."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # this checkout's svckit

import sqlalchemy as sa
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncConnection

from svckit.db import create_engine
from svckit.events import Consumer, Event, EventsSettings

_EFFECT = sa.text("INSERT INTO bench_effects (event_id, applied_at) VALUES (:e, clock_timestamp())")


async def handle(conn: AsyncConnection, event: Event) -> None:
    await conn.execute(_EFFECT, {"e": event.event_id})


async def main() -> None:
    database_url, group, name = sys.argv[1:4]
    settings = EventsSettings()
    engine = create_engine(database_url, pool_size=2)
    redis = Redis.from_url(settings.redis_url, decode_responses=True)
    await Consumer(
        redis=redis, engine=engine, settings=settings, group=group, handler=handle, name=name
    ).run()


if __name__ == "__main__":
    asyncio.run(main())
