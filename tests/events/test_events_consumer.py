"""Consumers against real PostgreSQL and Redis: fan-out, exactly one effect under redelivery,
retries that do not block others and survive restarts, dead letters and replay, and reclaiming the
deliveries of a consumer process that was SIGKILLed."""

from __future__ import annotations

import asyncio
import contextlib
import signal

import pytest
import redis
import sqlalchemy as sa
from prometheus_client import REGISTRY

from svckit.errors import NotFound
from svckit.events import Event
from svckit.events.admin import EventsAdmin


async def _drain(consumer) -> None:
    while await consumer.process_once(block_ms=1):
        pass


async def test_each_group_receives_every_event_once_and_members_share_the_work(bus):
    ids = await bus.add_events(30, aggregate="order-1")
    await bus.relay().drain()
    # Two members of the ledger group split the work; notifications reads everything on its own.
    ledger_a = bus.consumer("ledger-updater", "a", consumer_batch_size=10)
    ledger_b = bus.consumer("ledger-updater", "b", consumer_batch_size=10)
    notifications = bus.consumer("notifications", "n")
    await ledger_a.ensure_group()
    await notifications.ensure_group()
    got_a = await ledger_a.process_once(block_ms=1)
    got_b = await ledger_b.process_once(block_ms=1)
    assert got_a == 10 and got_b == 10
    await _drain(ledger_a)
    await _drain(notifications)
    assert await bus.effects("ledger-updater") == dict.fromkeys(ids, 1)
    assert await bus.effects("notifications") == dict.fromkeys(ids, 1)
    pending = await bus.redis.xpending(bus.stream, "ledger-updater")
    assert pending["pending"] == 0


async def test_a_redelivered_event_has_no_second_effect(bus):
    ids = await bus.add_events(3)
    await bus.relay().drain()
    entries = await bus.redis.xrange(bus.stream)
    # The same events arrive again (a relay that died before marking them sent), in one batch with
    # the originals and again later on their own.
    for _, fields in entries:
        await bus.redis.xadd(bus.stream, fields)
    consumer = bus.consumer("ledger-updater")
    await _drain(consumer)
    for _, fields in entries:
        await bus.redis.xadd(bus.stream, fields)
    await _drain(consumer)
    assert await bus.effects("ledger-updater") == dict.fromkeys(ids, 1)
    assert (await bus.redis.xpending(bus.stream, "ledger-updater"))["pending"] == 0


async def test_a_poison_event_is_dead_lettered_after_n_attempts_while_others_flow(bus):
    first = await bus.add_events(4, aggregate="order-1")
    poison = first[1]
    await bus.fault(poison, "transient")
    await bus.relay().drain()
    consumer = bus.consumer("ledger-updater")
    await _drain(consumer)
    # The poison failed once and waits for its retry; the other three were applied.
    assert set(await bus.effects("ledger-updater")) == set(first) - {poison}
    assert await consumer.channels.scheduled() == 1

    later = await bus.add_events(3, aggregate="order-2")
    await bus.relay().drain()
    await _drain(consumer)
    assert set(later) <= set(await bus.effects("ledger-updater"))  # not blocked by the waiting retry

    far_future = 2**52
    for _ in range(2):  # attempts 2 and 3 (retry_max_attempts = 3)
        assert await consumer.channels.move_due(now_ms=far_future) == 1
        await _drain(consumer)
    assert await consumer.channels.scheduled() == 0
    letters = await consumer.channels.list_dead_letters()
    assert len(letters) == 1
    letter = letters[0]
    assert letter.event.event_id == poison
    assert letter.event.payload == {"n": 1}
    assert letter.group == "ledger-updater" and letter.stream == bus.stream
    assert letter.reason == "attempts_exhausted"
    assert [a.attempt for a in letter.event.history] == [1, 2, 3]
    assert all("dependency down" in a.error and a.at for a in letter.event.history)
    assert "dependency down" in letter.last_error
    assert poison not in await bus.effects("ledger-updater")
    assert (await bus.redis.xpending(bus.stream, "ledger-updater"))["pending"] == 0


async def test_a_waiting_event_outlasts_the_attempts_of_a_failing_one_and_is_applied_once(bus):
    """Chaos seed 4: a refund waiting for its order's credit spent the same attempts as the order and
    was dead-lettered first. Waiting (for up to retry_max_wait_seconds) spends no attempt."""
    (waiting,) = await bus.add_events(1, aggregate="refund-1")
    await bus.fault(waiting, "waiting")
    await bus.relay().drain()
    consumer = bus.consumer("ledger-updater")
    await _drain(consumer)
    far_future = 2**52
    for _ in range(5):  # more rounds than retry_max_attempts = 3
        assert await consumer.channels.move_due(now_ms=far_future) == 1
        await _drain(consumer)
    assert await consumer.channels.list_dead_letters() == []
    assert await consumer.channels.scheduled() == 1
    await bus.fault(waiting, None)  # what it waited for has happened
    assert await consumer.channels.move_due(now_ms=far_future) == 1
    await _drain(consumer)
    assert await bus.effects("ledger-updater") == {waiting: 1}
    assert await consumer.channels.scheduled() == 0
    assert await consumer.channels.list_dead_letters() == []


async def test_a_terminal_error_is_dead_lettered_at_once_and_replay_processes_it_once(bus):
    ids = await bus.add_events(2)
    await bus.fault(ids[0], "terminal", group="ledger-updater")
    await bus.relay().drain()
    ledger = bus.consumer("ledger-updater")
    notifications = bus.consumer("notifications")
    await notifications.ensure_group()
    await _drain(ledger)
    await _drain(notifications)
    letters = await ledger.channels.list_dead_letters()
    assert [(dl.event.event_id, dl.reason, len(dl.event.history)) for dl in letters] == [
        (ids[0], "terminal", 1)
    ]
    assert await ledger.channels.scheduled() == 0

    await bus.fault(ids[0], None, group="ledger-updater")  # the operator fixed the cause
    admin = EventsAdmin(bus.redis, bus.settings.keys)
    await admin.replay(letters[0].id)
    with pytest.raises(NotFound):
        await admin.replay(letters[0].id)  # moved once; a second replay finds nothing
    await _drain(ledger)
    await _drain(notifications)  # the replayed copy is for ledger-updater only
    assert await bus.effects("ledger-updater") == dict.fromkeys(ids, 1)
    assert await bus.effects("notifications") == dict.fromkeys(ids, 1)
    assert await ledger.channels.list_dead_letters() == []
    replayed = [Event.from_fields(f) for _, f in await bus.redis.xrange(bus.stream)][-1]
    assert replayed.attempt == 1 and replayed.target_group == "ledger-updater"


async def test_replay_all_moves_every_dead_letter_back(bus):
    ids = await bus.add_events(3)
    for event_id in ids:
        await bus.fault(event_id, "terminal")
    await bus.relay().drain()
    consumer = bus.consumer("ledger-updater")
    await _drain(consumer)
    assert len(await consumer.channels.list_dead_letters()) == 3
    for event_id in ids:
        await bus.fault(event_id, None)
    admin = EventsAdmin(bus.redis, bus.settings.keys)
    assert await admin.replay_all(group="other-group") == 0
    assert await admin.replay_all() == 3
    await _drain(consumer)
    assert await bus.effects("ledger-updater") == dict.fromkeys(ids, 1)


async def test_scheduled_retries_survive_a_restart_of_every_process(bus):
    ids = await bus.add_events(2)
    await bus.fault(ids[0], "once")  # fails on attempt 1 only
    await bus.relay().drain()
    first = bus.consumer("ledger-updater", "first", retry_base_delay_seconds=0.2, retry_max_delay_seconds=0.2)
    await _drain(first)
    assert await first.channels.scheduled() == 1
    # Everything that ran stops; only Redis and PostgreSQL remain. A new consumer process (its own
    # Redis connection) picks the retry up when it is due.
    proc = bus.start_consumer_process("ledger-updater", "second")

    async def both_applied() -> bool:
        return len(await bus.effects("ledger-updater")) == 2

    await bus.wait_for(both_applied, what="the retried event to be applied by the new consumer")
    assert await bus.effects("ledger-updater") == dict.fromkeys(ids, 1)
    assert proc.poll() is None


async def _wait_exit(proc, within_seconds: float = 60.0) -> int:
    for _ in range(int(within_seconds / 0.05)):
        if proc.poll() is not None:
            return proc.returncode
        await asyncio.sleep(0.05)
    pytest.fail("process did not exit")


async def test_consumer_killed_after_effect_before_ack_applies_nothing_twice(bus):
    ids = await bus.add_events(10)
    await bus.relay().drain()
    crashed = bus.start_consumer_process(
        "ledger-updater", "c1", SVCKIT_EVENTS_CRASH_AT="consumer.after_commit"
    )
    assert await _wait_exit(crashed) == -signal.SIGKILL
    assert await bus.effects("ledger-updater") == dict.fromkeys(ids, 1)  # committed ...
    assert (await bus.redis.xpending(bus.stream, "ledger-updater"))["pending"] == 10  # ... not acked
    bus.start_consumer_process("ledger-updater", "c1")  # restarts under the same name

    async def acked() -> bool:
        return (await bus.redis.xpending(bus.stream, "ledger-updater"))["pending"] == 0

    await bus.wait_for(acked, what="the restarted consumer to acknowledge")
    assert await bus.effects("ledger-updater") == dict.fromkeys(ids, 1)


async def test_a_killed_consumers_deliveries_are_reclaimed_by_another(bus):
    ids = await bus.add_events(10)
    await bus.relay().drain()
    crashed = bus.start_consumer_process(
        "ledger-updater", "dead", SVCKIT_EVENTS_CRASH_AT="consumer.before_commit"
    )
    assert await _wait_exit(crashed) == -signal.SIGKILL
    assert await bus.effects("ledger-updater") == {}  # rolled back with the process
    summary = await bus.redis.xpending(bus.stream, "ledger-updater")
    assert summary["pending"] == 10 and summary["consumers"][0]["name"] == "dead"

    survivor = bus.consumer("ledger-updater", "survivor")
    assert await survivor.process_once(block_ms=1) == 0  # nothing new: the 10 belong to "dead"

    async def reclaimed() -> bool:
        return await survivor.reclaim_once() > 0

    await bus.wait_for(reclaimed, what="XAUTOCLAIM after the idle time")
    assert await bus.effects("ledger-updater") == dict.fromkeys(ids, 1)
    assert (await bus.redis.xpending(bus.stream, "ledger-updater"))["pending"] == 0


async def test_end_to_end_with_running_relay_and_consumers(bus):
    relay = bus.relay()
    bus.tasks.append(asyncio.create_task(relay.run()))
    for group in ("ledger-updater", "notifications"):
        bus.tasks.append(asyncio.create_task(bus.consumer(group, "a").run()))
        bus.tasks.append(asyncio.create_task(bus.consumer(group, "b").run()))
    ids = []
    for agg in range(5):
        ids += await bus.add_events(20, aggregate=f"order-{agg}")
    await bus.fault(ids[7], "once")

    async def done() -> bool:
        counts = [len(await bus.effects(g)) for g in ("ledger-updater", "notifications")]
        return counts == [len(ids), len(ids)]

    await bus.wait_for(done, what="every event applied by both groups")
    for group in ("ledger-updater", "notifications"):
        assert await bus.effects(group) == dict.fromkeys(ids, 1)


def _sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_metrics_count_publishing_consuming_retries_dead_letters_lag_and_backlog(bus):
    stream, group = bus.stream, "ledger-updater"
    ids = await bus.add_events(4)
    await bus.fault(ids[0], "terminal")
    await bus.fault(ids[1], "once")
    relay = bus.relay()
    backlog, age = await relay.update_backlog_metrics()
    assert backlog == 4 and age >= 0
    assert _sample("events_outbox_backlog") == 4
    await relay.drain()
    assert _sample("events_published_total", stream=stream) == 4
    consumer = bus.consumer(group)
    await consumer.ensure_group()
    await consumer.report_lag()
    assert _sample("events_consumer_lag", stream=stream, group=group) == 4
    await _drain(consumer)
    await consumer.channels.move_due(now_ms=2**52)
    await _drain(consumer)
    await consumer.report_lag()
    assert _sample("events_consumer_lag", stream=stream, group=group) == 0
    assert _sample("events_consumed_total", stream=stream, group=group, outcome="processed") == 3
    assert _sample("events_consumed_total", stream=stream, group=group, outcome="failed") == 2
    assert _sample("events_retried_total", stream=stream, group=group) == 1
    assert _sample("events_dead_lettered_total", stream=stream, group=group, reason="terminal") == 1
    await relay.update_backlog_metrics()
    assert _sample("events_outbox_backlog") == 0 and _sample("events_outbox_backlog_age_seconds") == 0


async def test_processed_records_are_purged_after_their_retention(bus):
    ids = await bus.add_events(3)
    await bus.relay().drain()
    consumer = bus.consumer("ledger-updater")
    await _drain(consumer)
    async with bus.engine.begin() as conn:
        await conn.execute(
            sa.text(
                "UPDATE processed_events SET processed_at = now() - interval '30 days' WHERE event_id = :e"
            ),
            {"e": ids[0]},
        )
    assert await consumer.purge_processed() == 1
    async with bus.engine.connect() as conn:
        left = (await conn.execute(sa.text("SELECT event_id FROM processed_events"))).scalars().all()
    assert sorted(left) == sorted(ids[1:])


async def test_an_event_that_keeps_killing_its_consumers_is_dead_lettered(bus):
    ids = await bus.add_events(2)
    await bus.relay().drain()
    group = "ledger-updater"
    await bus.consumer(group).ensure_group()
    # Consumers that die while holding the first event: delivered, claimed, claimed again, ...
    await bus.redis.xreadgroup(group, "dead-0", {bus.stream: ">"}, count=1)
    for i in range(1, 3):
        await bus.redis.xautoclaim(bus.stream, group, f"dead-{i}", 0, "0-0", count=1)
    survivor = bus.consumer(group, "survivor", max_deliveries=4)

    async def reclaimed() -> bool:
        return await survivor.reclaim_once() > 0

    await bus.wait_for(reclaimed, what="the reclaim")  # 4th delivery: dead-lettered, not handled
    letters = await survivor.channels.list_dead_letters()
    assert [(dl.event.event_id, dl.reason) for dl in letters] == [(ids[0], "max_deliveries")]
    assert "delivered 4 times" in letters[0].last_error
    await _drain(survivor)
    assert await bus.effects(group) == {ids[1]: 1}
    assert (await bus.redis.xpending(bus.stream, group))["pending"] == 0


async def test_a_batch_handler_gets_each_batch_once_and_a_failure_falls_back_to_one_by_one(bus):
    from svckit.events import Consumer
    from tests.events.events_demo import handler_for

    ids = await bus.add_events(6, aggregate="order-b")
    bad = ids[2]
    await bus.fault(bad, "terminal")
    await bus.relay().drain()
    one_by_one = handler_for("batcher")
    calls: list[list[str]] = []

    async def batch(conn, events):
        calls.append([e.event_id for e in events])
        for event in events:
            await one_by_one(conn, event)

    consumer = Consumer(
        redis=bus.redis,
        engine=bus.engine,
        settings=bus.settings.model_copy(update={"consumer_batch_size": 10}),
        group="batcher",
        batch_handler=batch,
        name="b1",
    )
    await _drain(consumer)
    # The whole batch first (rolled back by the bad event), then each event in a batch of its own.
    assert calls[0] == ids
    assert calls[1:] == [[i] for i in ids]
    assert await bus.effects("batcher") == {i: 1 for i in ids if i != bad}
    dead = await consumer.channels.list_dead_letters()
    assert [(d.group, d.event.event_id) for d in dead] == [("batcher", bad)]
    # A redelivery of the whole batch reaches the handler with nothing left to do.
    calls.clear()
    for _, fields in await bus.redis.xrange(bus.stream):
        await bus.redis.xadd(bus.stream, fields)
    await _drain(consumer)
    assert calls == [[bad], [bad]]  # only the never-applied event: in the batch, then alone
    assert await bus.effects("batcher") == {i: 1 for i in ids if i != bad}


def test_a_consumer_takes_exactly_one_kind_of_handler(bus):
    from svckit.events import Consumer

    with pytest.raises(ValueError):
        Consumer(redis=bus.redis, engine=bus.engine, settings=bus.settings, group="g")


async def test_a_consumer_stops_when_its_cancellation_comes_back_as_another_error(bus, monkeypatch):
    # A client library may turn a cancellation in the middle of a read into its own error (a lost connection).
    # The consumer's retry loop must not take that for a failure to retry: the service's stop would hang.
    reading = asyncio.Event()

    async def read_then_lose_the_connection(*args: object, **kwargs: object) -> object:
        reading.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            raise redis.exceptions.ConnectionError("connection closed while reading") from None
        return None

    monkeypatch.setattr(bus.redis, "xreadgroup", read_then_lose_the_connection)
    task = asyncio.create_task(bus.consumer("ledger-updater").run())
    await asyncio.wait_for(reading.wait(), timeout=30)
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=10)
    assert done == {task} and task.cancelled()


async def test_a_consumer_stops_when_a_library_swallows_its_cancellation(bus, monkeypatch):
    # Python 3.11's asyncio.wait_for (inside connection pools) returns its result and drops the cancellation
    # when both arrive together: the consumer's loops must still end (seen in CI: a consumer asleep in its
    # TaskGroup's periodic step long after its cancellation).
    reading = asyncio.Event()

    async def read_and_swallow_the_cancellation(*args: object, **kwargs: object) -> object:
        reading.set()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(3600)
        return None

    monkeypatch.setattr(bus.redis, "xreadgroup", read_and_swallow_the_cancellation)
    task = asyncio.create_task(bus.consumer("ledger-updater").run())
    await asyncio.wait_for(reading.wait(), timeout=30)
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=10)
    assert done == {task} and task.cancelled()
