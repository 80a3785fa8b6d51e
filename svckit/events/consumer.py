"""The consumer runner: one member of a consumer group, applying each event exactly once.

``handler(conn, event)`` (or ``batch_handler(conn, events)``) runs inside the consumer's database transaction, which also records
``(group, event_id)`` in ``processed_events``; the delivery is acknowledged only after that commit.
So a redelivered event (relay published twice, consumer died before XACK, a retry copy racing a slow
first attempt) finds its record and has no second effect, and an event whose transaction did not
commit is delivered again.

A batch of deliveries is applied in one transaction (one commit per batch, in stream order). If any
handler fails, that transaction rolls back and the batch is applied again one event per transaction,
so only the failing event is retried or dead-lettered and the others commit. Handlers must therefore
keep effects outside their connection idempotent (remote calls carry idempotency keys), as they must
anyway for redeliveries.

A failed event is acknowledged together (MULTI) with either its retry, scheduled in ``{ns}:retry``
and re-published by the mover when due, or its dead letter in ``{ns}:dlq``. Deliveries a crashed
consumer left unacknowledged are reclaimed (XAUTOCLAIM) after ``claim_min_idle_seconds``.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from svckit.events import streams
from svckit.events.channels import Channels, utc_now_iso
from svckit.events.config import EventsSettings
from svckit.events.faults import crashpoint
from svckit.events.message import Attempt, Event
from svckit.events.metrics import (
    CONSUMER_LAG,
    CONSUMER_PENDING,
    EVENTS_CONSUMED,
    EVENTS_DEAD_LETTERED,
    EVENTS_RECLAIMED,
    EVENTS_RETRIED,
    HANDLER_SECONDS,
)
from svckit.events.policy import DeadLetter, RetryPolicy, TerminalError
from svckit.logging import get_logger
from svckit.redisclient import RedisClient
from svckit.runtime import stop_if_cancelled

log = get_logger(__name__)

T = TypeVar("T")

Handler = Callable[[AsyncConnection, Event], Awaitable[None]]
BatchHandler = Callable[[AsyncConnection, list[Event]], Awaitable[None]]
"""Applies several events at once (e.g. one remote batch call instead of one call per event); the
same contract as ``Handler`` for each of them. If it raises, the consumer rolls the batch back and
applies each event alone, so a batch handler need not report which event failed."""

_RECORD_MANY = sa.text(
    """
    INSERT INTO processed_events (consumer_group, event_id)
    SELECT :group, unnest(CAST(:ids AS text[]))
    ON CONFLICT DO NOTHING
    RETURNING event_id
    """
)
_PURGE_PROCESSED = sa.text(
    """
    DELETE FROM processed_events WHERE (consumer_group, event_id) IN (
      SELECT consumer_group, event_id FROM processed_events
      WHERE consumer_group = :group AND processed_at < now() - make_interval(hours => :hours)
      LIMIT 5000)
    """
)


def _age_seconds(event: Event) -> float | None:
    """Seconds since the producer wrote the event; None when its time is missing or unreadable."""
    try:
        occurred = event.occurred_at_datetime
    except ValueError:
        return None
    if occurred.tzinfo is None:
        return None
    return max(0.0, (datetime.now(UTC) - occurred).total_seconds())


def _error_text(error: BaseException) -> str:
    text = f"{type(error).__name__}: {error}"
    return text[:2000]


@dataclass
class _Batch:
    """Deliveries read in one call, sorted into what to apply and what to acknowledge directly."""

    apply: list[Event] = field(default_factory=list)
    ack_only: list[str] = field(default_factory=list)
    malformed: list[tuple[str, dict[str, str]]] = field(default_factory=list)


class Consumer:
    """One consumer of ``group`` on ``stream``. ``run()`` reads, reclaims, moves due retries and
    reports lag until cancelled; the ``*_once`` methods do one step (tests and benchmarks)."""

    def __init__(
        self,
        *,
        redis: RedisClient,
        engine: AsyncEngine,
        settings: EventsSettings,
        group: str,
        handler: Handler | None = None,
        batch_handler: BatchHandler | None = None,
        stream: str | None = None,
        name: str | None = None,
        policy: RetryPolicy | None = None,
    ) -> None:
        self.redis = redis
        self.engine = engine
        self.settings = settings
        self.group = group
        if (handler is None) == (batch_handler is None):
            raise ValueError("give exactly one of handler and batch_handler")
        self.handler = handler
        self.batch_handler = batch_handler
        self.stream = stream or settings.keys.events
        if not self.stream.startswith(settings.keys.prefix + ":"):
            raise ValueError(f"stream {self.stream!r} must be in the {settings.keys.prefix} hash slot")
        self.name = name or f"{socket.gethostname()}-{os.getpid()}"
        self.policy = policy or RetryPolicy(
            max_attempts=settings.retry_max_attempts,
            base_delay_seconds=settings.retry_base_delay_seconds,
            max_delay_seconds=settings.retry_max_delay_seconds,
            max_wait_seconds=settings.retry_max_wait_seconds,
        )
        self.channels = Channels(redis, settings.keys)
        self._group_ready = False

    # -- steps ---------------------------------------------------------------------------------

    async def ensure_group(self) -> None:
        if not self._group_ready:
            await streams.ensure_group(self.redis, self.stream, self.group)
            self._group_ready = True

    async def process_once(self, block_ms: int | None = None, own_pending: bool = False) -> int:
        """Read and handle one batch: new deliveries, or (``own_pending``) this consumer's own
        unacknowledged ones from before a restart. Returns the number of deliveries finished."""
        await self.ensure_group()
        reply: Any = await self.redis.xreadgroup(
            self.group,
            self.name,
            {self.stream: "0" if own_pending else ">"},
            count=self.settings.consumer_batch_size,
            block=None
            if own_pending
            else (self.settings.consumer_block_ms if block_ms is None else block_ms),
        )
        entries = reply[0][1] if reply else []
        return await self.handle_entries(entries)

    async def reclaim_once(self) -> int:
        """Take over deliveries other consumers of the group left unacknowledged for too long."""
        await self.ensure_group()
        idle_ms = int(self.settings.claim_min_idle_seconds * 1000)
        start, total = "0-0", 0
        while True:
            next_start, entries, *_ = await self.redis.xautoclaim(
                self.stream, self.group, self.name, idle_ms, start, count=self.settings.consumer_batch_size
            )
            if entries:
                EVENTS_RECLAIMED.labels(self.stream, self.group).inc(len(entries))
                log.info("reclaimed deliveries", stream=self.stream, group=self.group, count=len(entries))
                kept = await self._dead_letter_crashers(entries)
                total += len(entries) - len(kept) + await self.handle_entries(kept)
            if next_start in ("0-0", b"0-0"):  # the cursor went round the whole pending list
                return total
            start = next_start

    async def _dead_letter_crashers(self, entries: list) -> list:
        """Dead-letter reclaimed entries delivered ``max_deliveries`` times without an outcome;
        return the others."""
        ids = [entry_id for entry_id, _ in entries]
        info = await self.redis.xpending_range(
            self.stream,
            self.group,
            min=min(ids, key=streams.parse_id),
            max=max(ids, key=streams.parse_id),
            count=len(ids) * 2,
            consumername=self.name,
        )
        deliveries = {p["message_id"]: int(p["times_delivered"]) for p in info}
        keep = []
        for entry_id, fields in entries:
            times = deliveries.get(entry_id, 0)
            if fields is None or times < self.settings.max_deliveries:
                keep.append((entry_id, fields))
                continue
            try:
                event = Event.from_fields(fields, stream_id=entry_id)
            except (KeyError, ValueError):
                keep.append((entry_id, fields))  # handle_entries dead-letters malformed entries
                continue
            error = TerminalError(
                f"delivered {times} times without an outcome; the consumer seems to die on it"
            )
            await self._fail(event, error, forced=DeadLetter("max_deliveries"))
        return keep

    async def move_due_retries(self) -> int:
        return await self.channels.move_due()

    async def purge_processed(self) -> int:
        """Forget processed event ids older than the retention, in small batches."""
        total = 0
        while True:
            async with self.engine.begin() as conn:
                result = await conn.execute(
                    _PURGE_PROCESSED, {"group": self.group, "hours": self.settings.processed_retention_hours}
                )
            total += result.rowcount
            if result.rowcount < 5000:
                return total

    async def report_lag(self) -> None:
        for info in await streams.group_infos(self.redis, self.stream):
            if info.name == self.group:
                CONSUMER_PENDING.labels(self.stream, self.group).set(info.pending)
                if info.lag is not None:
                    CONSUMER_LAG.labels(self.stream, self.group).set(info.lag)

    # -- handling ------------------------------------------------------------------------------

    def _sort(self, entries: list) -> _Batch:
        batch = _Batch()
        seen: set[str] = set()
        for entry_id, fields in entries:
            if fields is None:  # deleted while pending
                batch.ack_only.append(entry_id)
                continue
            try:
                event = Event.from_fields(fields, stream_id=entry_id)
            except (KeyError, ValueError):
                batch.malformed.append((entry_id, fields))
                continue
            if event.target_group and event.target_group != self.group:
                EVENTS_CONSUMED.labels(self.stream, self.group, "skipped").inc()
                batch.ack_only.append(entry_id)
            elif event.event_id in seen:
                EVENTS_CONSUMED.labels(self.stream, self.group, "duplicate").inc()
                batch.ack_only.append(entry_id)
            else:
                seen.add(event.event_id)
                batch.apply.append(event)
        return batch

    async def handle_entries(self, entries: list) -> int:
        if not entries:
            return 0
        batch = self._sort(entries)
        started = time.perf_counter()
        done: list[str] = list(batch.ack_only)
        failed: list[tuple[Event, BaseException]] = []
        if len(batch.apply) > 1:
            try:
                done += await self._apply(batch.apply)
            except Exception as error:
                # Someone in the batch failed and rolled everyone back: apply them one by one.
                log.info(
                    "batch rolled back; applying its events one by one",
                    size=len(batch.apply),
                    error=_error_text(error),
                )
                for event in batch.apply:
                    await self._apply_alone(event, done, failed)
        elif batch.apply:
            await self._apply_alone(batch.apply[0], done, failed)
        HANDLER_SECONDS.labels(self.stream, self.group).observe(time.perf_counter() - started)
        crashpoint("consumer.after_commit")
        if done:
            await self.redis.xack(self.stream, self.group, *done)
        for event, failure in failed:
            await self._fail(event, failure)
        for entry_id, fields in batch.malformed:
            event = Event(
                event_id=fields.get("event_id", ""),
                type=fields.get("type", ""),
                aggregate_id=fields.get("aggregate_id", ""),
                payload={"raw": fields},
                occurred_at=fields.get("occurred_at", ""),
                stream_id=entry_id,
            )
            await self._fail(event, TerminalError("malformed stream entry"))
        return len(entries)

    async def _apply_alone(self, event: Event, done: list[str], failed: list) -> None:
        try:
            done += await self._apply([event])
        except Exception as error:
            failed.append((event, error))

    async def _apply(self, events: list[Event]) -> list[str]:
        """Apply ``events`` in one transaction; returns their stream ids once committed."""
        async with self.engine.begin() as conn:
            fresh = set(
                (
                    await conn.execute(
                        _RECORD_MANY, {"group": self.group, "ids": [e.event_id for e in events]}
                    )
                ).scalars()
            )
            if self.batch_handler is not None:
                todo = [e for e in events if e.event_id in fresh]
                if todo:
                    await self.batch_handler(conn, todo)
            else:
                assert self.handler is not None
                for event in events:
                    if event.event_id in fresh:
                        await self.handler(conn, event)
            crashpoint("consumer.before_commit")
        for event in events:
            outcome = "processed" if event.event_id in fresh else "duplicate"
            EVENTS_CONSUMED.labels(self.stream, self.group, outcome).inc()
        return [e.stream_id for e in events]

    async def _fail(self, event: Event, error: BaseException, forced: DeadLetter | None = None) -> None:
        EVENTS_CONSUMED.labels(self.stream, self.group, "failed").inc()
        failed = Attempt(attempt=event.attempt, at=utc_now_iso(), error=_error_text(error))
        decision = forced or self.policy.decide(event.attempt, error, waited_seconds=_age_seconds(event))
        async with self.redis.pipeline(transaction=True) as pipe:
            if isinstance(decision, DeadLetter):
                self.channels.dead_letter(pipe, self.stream, self.group, event, failed, decision.reason)
            else:
                again = (
                    event.next_attempt(self.group, failed)
                    if decision.spends_attempt
                    else event.waiting_again(self.group, failed)
                )
                self.channels.schedule_retry(pipe, self.stream, again, decision.delay_seconds)
            pipe.xack(self.stream, self.group, event.stream_id)
            await pipe.execute()
        if isinstance(decision, DeadLetter):
            EVENTS_DEAD_LETTERED.labels(self.stream, self.group, decision.reason).inc()
            log.warning(
                "event dead-lettered",
                stream=self.stream,
                group=self.group,
                event_id=event.event_id,
                attempt=event.attempt,
                reason=decision.reason,
                error=failed.error,
            )
        else:
            EVENTS_RETRIED.labels(self.stream, self.group).inc()
            log.info(
                "event retry scheduled",
                stream=self.stream,
                group=self.group,
                event_id=event.event_id,
                attempt=event.attempt,
                delay_seconds=round(decision.delay_seconds, 3),
                error=failed.error,
            )

    # -- the loop ------------------------------------------------------------------------------

    async def run(self) -> None:
        """Consume until cancelled: reads, plus periodic reclaim, retry moves and lag reports."""
        await _until_ok(self.ensure_group, "create consumer group")
        while await _until_ok(lambda: self.process_once(own_pending=True), "process own pending"):
            pass
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self._every(self.settings.claim_interval_seconds, self.reclaim_once, "reclaim"))
            tasks.create_task(
                self._every(self.settings.retry_mover_interval_seconds, self.move_due_retries, "move retries")
            )
            tasks.create_task(self._every(self.settings.lag_interval_seconds, self.report_lag, "report lag"))
            tasks.create_task(
                self._every(self.settings.processed_purge_interval_seconds, self.purge_processed, "purge")
            )
            tasks.create_task(self._read_forever())

    async def _read_forever(self) -> None:
        linger = self.settings.consumer_linger_seconds
        while True:
            n = await _until_ok(self.process_once, "read batch")
            if linger and 0 < n < self.settings.consumer_batch_size:
                await asyncio.sleep(linger)

    @staticmethod
    async def _every(interval: float, step: Callable[[], Awaitable[object]], what: str) -> None:
        while True:
            await _until_ok(step, what)
            await asyncio.sleep(interval)


async def _until_ok(step: Callable[[], Awaitable[T]], what: str) -> T:
    """Run ``step``, retrying with a capped backoff while Redis or PostgreSQL is unreachable."""
    failures = 0
    while True:
        try:
            result = await step()
        except asyncio.CancelledError:
            raise
        except Exception:
            stop_if_cancelled()
            failures += 1
            log.exception("consumer step failed; retrying", step=what, failures=failures)
            await asyncio.sleep(min(5.0, 0.1 * 2**failures))
        else:
            stop_if_cancelled()  # a cancellation a library swallowed (3.11's wait_for can) still ends the job
            return result
