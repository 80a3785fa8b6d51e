"""The relay: publishes committed outbox events to their streams, in order per aggregate.

One claim is one database transaction:

1. take the transaction-scoped advisory locks of every relay partition no other relay holds
   (``pg_try_advisory_xact_lock``), then, in a new statement (so a new snapshot), read the oldest
   unpublished events of those partitions in ``seq`` order;
2. publish them with one Redis pipeline (XADD, in order);
3. mark them sent and commit, which releases the partitions.

A partition is published by one relay at a time and in ``seq`` order, and ``outbox.add`` makes
``seq`` follow commit order per aggregate, so each aggregate's events reach the stream in commit
order however many relay replicas run. A crash before step 3 rolls the marks back: the next claim
publishes the same events again (consumers absorb the duplicate). A crash before step 2 loses nothing.

The relay sleeps on ``LISTEN event_outbox`` (the table's trigger notifies on every producer commit)
with a short poll as fallback, and returns to claim at once while a batch comes back full.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import psycopg
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from svckit.events import streams
from svckit.events.config import EventsSettings
from svckit.events.faults import crashpoint
from svckit.events.metrics import EVENTS_PUBLISHED, OUTBOX_BACKLOG, OUTBOX_BACKLOG_AGE
from svckit.events.outbox import _digest
from svckit.events.tables import NOTIFY_CHANNEL, OUTBOX_PARTITIONS
from svckit.logging import get_logger
from svckit.redisclient import RedisClient
from svckit.runtime import stop_if_cancelled

log = get_logger(__name__)

# Two-int advisory lock space (class, partition); the class is derived from the table name so it
# does not collide with the one-bigint locks of outbox.add and the idempotency store.
_LOCK_CLASS = _digest("event_outbox relay partitions") & 0x7FFFFFFF

# Two statements on purpose: in READ COMMITTED each statement reads from a snapshot taken when it
# starts. Had the claim taken the partition locks itself, its snapshot could predate the commit of
# the relay that held them a moment earlier, and it would publish that relay's batch again (a
# duplicate, and out of order). Locking first makes the claim's snapshot see every earlier mark.
_LOCK_PARTITIONS = sa.text(
    f"""
    SELECT p FROM generate_series(0, {OUTBOX_PARTITIONS - 1}) AS p
    WHERE pg_try_advisory_xact_lock({_LOCK_CLASS}, p)
    """
)
_CLAIM = sa.text(
    """
    SELECT seq, event_id::text AS event_id, stream, aggregate_id, type, payload::text AS payload,
           created_at
    FROM event_outbox
    WHERE published_at IS NULL AND partition = ANY(CAST(:partitions AS smallint[]))
    ORDER BY seq
    LIMIT :limit
    """
)
_MARK = sa.text("UPDATE event_outbox SET published_at = now() WHERE seq = ANY(:seqs)")
_BACKLOG = sa.text(
    """
    SELECT count(*) AS n, COALESCE(EXTRACT(EPOCH FROM now() - min(created_at)), 0) AS age
    FROM event_outbox WHERE published_at IS NULL
    """
)
_PURGE = sa.text(
    """
    DELETE FROM event_outbox WHERE seq IN (
      SELECT seq FROM event_outbox
      WHERE published_at IS NOT NULL AND published_at < now() - make_interval(hours => :hours)
      LIMIT 5000)
    """
)


class Relay:
    def __init__(self, engine: AsyncEngine, redis: RedisClient, settings: EventsSettings) -> None:
        self.engine = engine
        self.redis = redis
        self.settings = settings
        self._known_streams: set[str] = set()

    async def publish_batch(self) -> int:
        """Claim, publish and mark one batch; returns the number of events published."""
        async with self.engine.begin() as conn:
            partitions = (await conn.execute(_LOCK_PARTITIONS)).scalars().all()
            if not partitions:
                return 0  # another relay holds them all right now
            rows = (
                await conn.execute(
                    _CLAIM, {"partitions": partitions, "limit": self.settings.relay_batch_size}
                )
            ).all()
            if not rows:
                return 0
            crashpoint("relay.before_publish")
            async with self.redis.pipeline(transaction=False) as pipe:
                for r in rows:
                    pipe.xadd(
                        r.stream,
                        {
                            "event_id": r.event_id,
                            "type": r.type,
                            "aggregate_id": r.aggregate_id,
                            "payload": r.payload,
                            "occurred_at": r.created_at.isoformat(timespec="microseconds"),
                            "seq": str(r.seq),
                            "attempt": "1",
                        },
                    )
                new_streams = {r.stream for r in rows} - self._known_streams
                if new_streams:
                    pipe.sadd(self.settings.keys.streams_set, *new_streams)
                await pipe.execute()
            crashpoint("relay.after_publish")
            await conn.execute(_MARK, {"seqs": [r.seq for r in rows]})
        self._known_streams |= {r.stream for r in rows}
        for r in rows:
            EVENTS_PUBLISHED.labels(r.stream).inc()
        return len(rows)

    async def drain(self) -> int:
        """Publish until nothing is left that this relay may claim (tests, shutdown)."""
        total = 0
        while n := await self.publish_batch():
            total += n
        return total

    async def update_backlog_metrics(self) -> tuple[int, float]:
        async with self.engine.connect() as conn:
            row = (await conn.execute(_BACKLOG)).one()
        OUTBOX_BACKLOG.set(row.n)
        OUTBOX_BACKLOG_AGE.set(float(row.age))
        return int(row.n), float(row.age)

    async def housekeeping(self) -> None:
        """Purge old published rows and trim the live streams (never past what a group needs)."""
        async with self.engine.begin() as conn:
            await conn.execute(_PURGE, {"hours": self.settings.outbox_retention_hours})
        members: Any = await self.redis.smembers(self.settings.keys.streams_set)  # decoded: a set of str
        for stream in members:
            removed = await streams.trim(
                self.redis, stream, self.settings.stream_max_len, self.settings.stream_max_age_seconds
            )
            if removed:
                log.info("stream trimmed", stream=stream, removed=removed)

    async def run(self) -> None:
        """Relay forever (cancel the task to stop)."""
        listener = _Listener(self.engine)
        next_housekeeping = next_metrics = 0.0
        failures = 0
        try:
            while True:
                try:
                    n = await self.publish_batch()
                    failures = 0
                    now = time.monotonic()
                    if now >= next_metrics:
                        next_metrics = now + self.settings.lag_interval_seconds
                        await self.update_backlog_metrics()
                    if now >= next_housekeeping:
                        next_housekeeping = now + self.settings.trim_interval_seconds
                        await self.housekeeping()
                except asyncio.CancelledError:
                    raise
                except Exception:
                    stop_if_cancelled()
                    failures += 1
                    log.exception("relay batch failed; retrying", failures=failures)
                    await asyncio.sleep(min(5.0, 0.1 * 2**failures))
                    continue
                stop_if_cancelled()  # a cancellation a library swallowed (3.11's wait_for can) still ends the job
                if n < self.settings.relay_batch_size:
                    await listener.wait(self.settings.relay_poll_interval_seconds)
                    if self.settings.relay_linger_seconds:
                        await asyncio.sleep(self.settings.relay_linger_seconds)
        finally:
            await listener.close()


class _Listener:
    """LISTEN on the outbox channel on a dedicated connection; falls back to polling if it breaks."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._dsn = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        self._conn: psycopg.AsyncConnection | None = None

    async def wait(self, poll_seconds: float) -> None:
        try:
            if self._conn is None or self._conn.closed:
                self._conn = await psycopg.AsyncConnection.connect(self._dsn, autocommit=True)
                await self._conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
            async for _ in self._conn.notifies(timeout=poll_seconds, stop_after=1):
                pass
        except psycopg.Error:
            log.warning("outbox LISTEN connection lost; polling", exc_info=True)
            await self.close()
            await asyncio.sleep(poll_seconds)

    async def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.close()
            self._conn = None
