"""Fixtures of the event backbone tests: a database with the outbox, processed-events and demo
tables, a fresh key namespace per test (so tests share one Redis without seeing each other), and
helpers to start relays and consumers as real processes."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import sqlalchemy as sa
from redis.asyncio import Redis
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from svckit.db import create_engine, drop_database, ensure_database
from svckit.events import Consumer, EventsSettings, Relay, create_all, outbox
from svckit.redisclient import RedisClient
from svckit.runtime import awaiting
from svckit.testing import Infra
from tests.events.events_demo import DEMO_DDL, handler_for

ROOT = Path(__file__).resolve().parents[2]
DEMO = Path(__file__).with_name("events_demo.py")

# Small timings so the whole folder runs in seconds. EventsSettings fields by name (ints and floats);
# Any, as EventsSettings(**FAST) checks each against its field.
FAST: dict[str, Any] = {
    "retry_base_delay_seconds": 0.05,
    "retry_max_delay_seconds": 0.2,
    "retry_max_attempts": 3,
    "retry_mover_interval_seconds": 0.05,
    "consumer_block_ms": 50,
    "claim_min_idle_seconds": 0.3,
    "claim_interval_seconds": 0.1,
    "relay_poll_interval_seconds": 0.05,
    "lag_interval_seconds": 0.2,
}


@pytest.fixture(scope="session")
def events_database_url(infra: Infra) -> Iterator[str]:
    url = make_url(infra.database_url_for(f"{infra.prefix}_events"))
    ensure_database(url.render_as_string(hide_password=False))
    yield url.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    drop_database(url.render_as_string(hide_password=False))


@pytest_asyncio.fixture(scope="session")
async def events_engine(events_database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(events_database_url, pool_size=5)
    async with engine.begin() as conn:
        await create_all(conn)
        for ddl in DEMO_DDL:
            await conn.exec_driver_sql(ddl)
    yield engine
    await engine.dispose()


@dataclass
class Bus:
    """One test's view of the backbone: its settings (own namespace), Redis, the demo database."""

    settings: EventsSettings
    redis: RedisClient
    engine: AsyncEngine
    database_url: str
    procs: list[subprocess.Popen] = field(default_factory=list)
    tasks: list[asyncio.Task] = field(default_factory=list)

    @property
    def stream(self) -> str:
        return self.settings.keys.events

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("EVENTS_")}
        env.pop("SVCKIT_EVENTS_CRASH_AT", None)
        env.update({f"EVENTS_{k.upper()}": str(v) for k, v in FAST.items()})
        env.update(
            EVENTS_NAMESPACE=self.settings.namespace,
            REDIS_URL=self.settings.redis_url,
            DATABASE_URL=self.database_url,
            PYTHONPATH=str(ROOT),
        )
        env.update(extra)
        return env

    def start_relay_process(self, **env: str) -> subprocess.Popen:
        proc = subprocess.Popen(
            [sys.executable, "-m", "svckit.events", "relay", "--database-url", self.database_url],
            cwd=ROOT,
            env=self.env(**env),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.procs.append(proc)
        return proc

    def start_consumer_process(self, group: str, name: str, **env: str) -> subprocess.Popen:
        proc = subprocess.Popen(
            [sys.executable, str(DEMO), self.database_url, group, name],
            cwd=ROOT,
            env=self.env(**env),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.procs.append(proc)
        return proc

    def relay(self, **overrides: object) -> Relay:
        return Relay(self.engine, self.redis, self.settings.model_copy(update=overrides))

    def consumer(self, group: str, name: str = "c1", **overrides: object) -> Consumer:
        return Consumer(
            redis=self.redis,
            engine=self.engine,
            settings=self.settings.model_copy(update=overrides),
            group=group,
            handler=handler_for(group),
            name=name,
        )

    async def add_events(self, count: int, aggregate: str = "agg", **payload: object) -> list[str]:
        """Commit ``count`` events (one transaction) and return their ids in order."""
        ids = []
        async with self.engine.begin() as conn:
            for n in range(count):
                ids.append(
                    await outbox.add(
                        conn,
                        stream=self.stream,
                        aggregate_id=aggregate,
                        type="demo.happened",
                        payload={"n": n, **payload},
                    )
                )
        return ids

    async def fault(self, event_id: str, kind: str | None, group: str = "*") -> None:
        """Make ``event_id`` fail in ``group`` ('*': every group) with ``kind``; None fixes it."""
        async with self.engine.begin() as conn:
            await conn.execute(
                sa.text("DELETE FROM demo_faults WHERE event_id = :e AND consumer_group = :g"),
                {"e": event_id, "g": group},
            )
            if kind:
                await conn.execute(
                    sa.text("INSERT INTO demo_faults VALUES (:e, :g, :k)"),
                    {"e": event_id, "g": group, "k": kind},
                )

    async def effects(self, group: str) -> dict[str, int]:
        """event id → number of effects applied by ``group``."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                sa.text(
                    "SELECT event_id, count(*) FROM demo_effects WHERE consumer_group = :g GROUP BY event_id"
                ),
                {"g": group},
            )
            return {r[0]: r[1] for r in rows}

    async def unpublished(self) -> int:
        async with self.engine.connect() as conn:
            return (
                await conn.execute(sa.text("SELECT count(*) FROM event_outbox WHERE published_at IS NULL"))
            ).scalar_one()

    async def wait_for(self, check, within_seconds: float = 60.0, what: str = "condition") -> None:
        """Poll ``check`` (async, truthy when done); fail the test if it never holds. The bound is
        generous because some checks wait for a new Python process to start, which takes tens of
        seconds on a loaded machine; a passing check returns as soon as it holds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within_seconds
        while not await check():
            if loop.time() > deadline:
                pytest.fail(f"timed out waiting for {what}")
            await asyncio.sleep(0.05)


@pytest_asyncio.fixture
async def bus(infra: Infra, events_engine: AsyncEngine, events_database_url: str) -> AsyncIterator[Bus]:
    async with events_engine.begin() as conn:
        # A lock still held by a previous test's leftover task fails this test instead of hanging the run.
        await conn.exec_driver_sql("SET LOCAL lock_timeout = '20s'")
        await conn.exec_driver_sql("TRUNCATE event_outbox, processed_events, demo_effects, demo_faults")
    settings = EventsSettings(namespace=f"t{uuid.uuid4().hex[:10]}", redis_url=infra.redis_url, **FAST)
    redis = Redis.from_url(infra.redis_url, decode_responses=True)
    b = Bus(settings=settings, redis=redis, engine=events_engine, database_url=events_database_url)
    yield b
    for task in b.tasks:
        task.cancel()
    if b.tasks:
        # Bounded: a task that ignores its cancellation must not hold the run (asyncio.wait does not wait
        # for the cancellation as wait_for would); it is reported, and its results are not awaited.
        _, stuck = await asyncio.wait(b.tasks, timeout=20)
        for task in b.tasks:
            if task.done() and not task.cancelled():
                task.exception()  # retrieved: failed and already reported by the test
        # Where each unfinished task of the loop waits (a stuck parent's children included): the diagnosis.
        where = "\n".join(f"{t.get_name()}: {awaiting(t)}" for t in asyncio.all_tasks() if not t.done())
        assert not stuck, f"{len(stuck)} task(s) did not stop within 20 s of their cancellation:\n{where}"
    for proc in b.procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    await redis.aclose()
