"""Outbox and relay against real PostgreSQL and Redis: commit-bound publishing, per-aggregate order
with several relays, and no loss when a real relay process is SIGKILLed between steps."""

from __future__ import annotations

import asyncio
import json
import signal

import pytest
import sqlalchemy as sa

from svckit.db import driver_connection
from svckit.events import outbox


async def _stream_events(bus) -> list[dict[str, str]]:
    return [fields for _, fields in await bus.redis.xrange(bus.stream)]


async def test_only_committed_events_are_published(bus):
    kept = await bus.add_events(2, aggregate="order-1")
    with pytest.raises(RuntimeError):
        async with bus.engine.begin() as conn:
            await outbox.add(conn, stream=bus.stream, aggregate_id="order-2", type="demo.lost", payload={})
            raise RuntimeError("the unit of work fails after writing its event")
    assert await bus.relay().drain() == 2
    published = await _stream_events(bus)
    assert [f["event_id"] for f in published] == kept
    assert published[0]["type"] == "demo.happened" and published[0]["aggregate_id"] == "order-1"
    assert await bus.unpublished() == 0
    assert await bus.relay().drain() == 0  # marked sent: not published again


ROUNDS = 100


async def test_several_relays_keep_each_aggregates_order(bus):
    aggregates = [f"order-{i}" for i in range(6)]

    async def produce() -> None:
        # Many small transactions, interleaving aggregates, while the relays run.
        for n in range(ROUNDS):
            async with bus.engine.begin() as conn:
                for agg in aggregates:
                    await outbox.add(
                        conn, stream=bus.stream, aggregate_id=agg, type="demo.step", payload={"n": n}
                    )
            await asyncio.sleep(0)

    async def relay_until_done(relay, producer: asyncio.Task) -> None:
        while not producer.done() or await bus.unpublished():
            await relay.publish_batch()
            await asyncio.sleep(0)

    producer = asyncio.create_task(produce())
    relays = [bus.relay(relay_batch_size=5) for _ in range(3)]
    await asyncio.gather(producer, *(relay_until_done(r, producer) for r in relays))

    published = await _stream_events(bus)
    assert len(published) == ROUNDS * len(aggregates)  # no duplicates
    for agg in aggregates:
        steps = [int(json.loads(f["payload"])["n"]) for f in published if f["aggregate_id"] == agg]
        assert steps == list(range(ROUNDS)), f"{agg} reordered"


@pytest.mark.parametrize("many", [False, True], ids=["add", "add_many"])
async def test_a_second_writer_of_the_same_aggregate_waits_for_the_first_to_commit(bus, many):
    # The advisory lock taken by outbox.add makes seq order equal commit order per aggregate.
    async with bus.engine.connect() as first:
        await first.begin()
        await outbox.add(first, stream=bus.stream, aggregate_id="order-9", type="demo.first", payload={})

        async def second() -> None:
            async with bus.engine.begin() as conn:
                await outbox.add(
                    conn, stream=bus.stream, aggregate_id="order-9", type="demo.second", payload={}
                )

        task = asyncio.create_task(second())

        async def second_is_waiting_on_the_lock() -> bool:
            async with bus.engine.connect() as conn:
                waiting = await conn.execute(
                    sa.text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
                )
                return waiting.scalar_one() == 1

        await bus.wait_for(second_is_waiting_on_the_lock, what="second writer blocked")
        assert not task.done()
        await first.commit()
    await task
    await bus.relay().drain()
    types = [f["type"] for f in await _stream_events(bus) if f["aggregate_id"] == "order-9"]
    assert types == ["demo.first", "demo.second"]


async def _wait_exit(proc, within_seconds: float = 60.0) -> int:
    for _ in range(int(within_seconds / 0.05)):
        if proc.poll() is not None:
            return proc.returncode
        await asyncio.sleep(0.05)
    pytest.fail("process did not exit")


@pytest.mark.parametrize("point", ["relay.before_publish", "relay.after_publish"])
async def test_relay_killed_between_steps_loses_nothing_and_consumers_absorb_duplicates(bus, point):
    ids = await bus.add_events(12, aggregate="order-1")
    crashed = bus.start_relay_process(SVCKIT_EVENTS_CRASH_AT=point, EVENTS_RELAY_BATCH_SIZE="5")
    assert await _wait_exit(crashed) == -signal.SIGKILL
    in_stream = await bus.redis.xlen(bus.stream)
    assert in_stream == (5 if point == "relay.after_publish" else 0)
    assert await bus.unpublished() == 12  # nothing was marked sent

    bus.start_relay_process(EVENTS_RELAY_BATCH_SIZE="5")

    async def all_marked() -> bool:
        return await bus.unpublished() == 0

    await bus.wait_for(all_marked, what="restarted relay to publish everything")
    published = await _stream_events(bus)
    assert {f["event_id"] for f in published} == set(ids)
    assert len(published) == 12 + in_stream  # the first batch twice after publish-before-mark

    for group in ("ledger-updater", "notifications"):
        consumer = bus.consumer(group)
        while await consumer.process_once(block_ms=1):
            pass
        assert await bus.effects(group) == dict.fromkeys(ids, 1)


async def test_add_many_writes_in_list_order_in_the_callers_transaction(bus):
    events = [outbox.NewEvent(f"order-{i % 3}", "demo.batch", {"n": i}) for i in range(9)]
    with pytest.raises(RuntimeError):
        async with bus.engine.begin() as conn:
            await outbox.add_many(conn, stream=bus.stream, events=events[:2])
            raise RuntimeError("rolled back")
    async with bus.engine.begin() as conn:
        ids = await outbox.add_many(conn, stream=bus.stream, events=events)
    assert ids == [e.event_id for e in events]
    await bus.relay().drain()
    published = await _stream_events(bus)
    assert [f["event_id"] for f in published] == ids
    assert [json.loads(f["payload"])["n"] for f in published] == list(range(9))
    with pytest.raises(ValueError):
        async with bus.engine.begin() as conn:
            await outbox.add_many(conn, stream=bus.stream, events=[outbox.NewEvent("", "demo.bad", {})])


async def test_an_embedded_event_is_written_only_when_its_source_yields_a_row(bus):
    # One statement: "move a row if it is still in the expected state, and if it moved, record the
    # event" — the event cannot exist without the change, nor the change without the event.
    async with bus.engine.begin() as sa_conn:
        conn = await driver_connection(sa_conn)
        await conn.execute("CREATE TEMP TABLE demo_rows (id int PRIMARY KEY, state text)")
        await conn.execute("INSERT INTO demo_rows VALUES (1, 'open')")
        statement = (
            "WITH moved AS (UPDATE demo_rows SET state = 'closed' WHERE id = 1 AND state = 'open'"
            " RETURNING id), event AS (" + outbox.EmbeddedEvent.sql("moved") + ") SELECT count(*) FROM moved"
        )
        event = outbox.embed(stream=bus.stream, aggregate_id="row-1", type="demo.closed", payload={"id": 1})
        assert (await (await conn.execute(statement, event.params)).fetchone())[0] == 1
        again = outbox.embed(stream=bus.stream, aggregate_id="row-1", type="demo.closed", payload={"id": 1})
        assert (await (await conn.execute(statement, again.params)).fetchone())[0] == 0  # no event
    await bus.relay().drain()
    published = await _stream_events(bus)
    assert [(f["event_id"], f["type"], f["aggregate_id"]) for f in published] == [
        (event.params["outbox_event_id"], "demo.closed", "row-1")
    ]
    assert json.loads(published[0]["payload"]) == {"id": 1}
    with pytest.raises(ValueError):
        outbox.EmbeddedEvent.sql("moved; DROP TABLE event_outbox")
