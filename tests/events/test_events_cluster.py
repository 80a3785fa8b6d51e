"""The event backbone on a Valkey Cluster (REDIS_CLUSTER): the same code on RedisCluster, with the
stream, retry, dead-letter and discarded keys in one hash slot, so MULTI pipelines and Lua scripts run
unchanged. One cluster for the module, three primaries (the keys of a namespace land on one of them)."""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio

from gateway.ratelimit import RateLimiter
from svckit.devstack.infra import EmbeddedValkeyCluster, free_port, remove_tree
from svckit.events.admin import EventsAdmin
from svckit.redisclient import is_cluster, redis_client
from tests.events.conftest import Bus


@pytest.fixture(scope="module")
def cluster() -> Iterator[EmbeddedValkeyCluster]:
    folder = Path(tempfile.mkdtemp(prefix="valkey-cluster-"))
    # No replicas here: the fail-over is the drill's (benchmarks/drill_valkey_failover.py).
    started = EmbeddedValkeyCluster(
        folder, [free_port() for _ in range(3)], primaries=3, replicas=0, persist=False
    ).start()
    yield started
    started.stop()
    remove_tree(folder)


@pytest_asyncio.fixture
async def cluster_bus(bus: Bus, cluster: EmbeddedValkeyCluster) -> AsyncIterator[Bus]:
    """The events tests' bus (own namespace, own database rows) with its Redis on the cluster."""
    settings = bus.settings.model_copy(update={"redis_url": cluster.url, "redis_cluster": True})
    client = redis_client(cluster.url, settings.redis_cluster, decode_responses=True)
    yield dataclasses.replace(bus, settings=settings, redis=client)
    await client.aclose()


async def _drain(consumer) -> None:
    while await consumer.process_once(block_ms=1):
        pass


async def test_publish_consume_retry_dead_letter_and_replay_run_unchanged_on_a_cluster(cluster_bus):
    bus = cluster_bus
    assert is_cluster(bus.redis)
    ids = await bus.add_events(6)
    await bus.fault(ids[1], "transient", group="ledger-updater")
    await bus.fault(ids[2], "terminal", group="ledger-updater")
    await bus.relay().drain()
    ledger = bus.consumer("ledger-updater")
    notifications = bus.consumer("notifications")
    await notifications.ensure_group()
    await _drain(ledger)  # the failures: one MULTI pipeline each (retry or dead letter, and XACK)
    await _drain(notifications)
    assert set(await bus.effects("ledger-updater")) == set(ids) - {ids[1], ids[2]}
    assert await bus.effects("notifications") == dict.fromkeys(ids, 1)
    assert await ledger.channels.scheduled() == 1

    await bus.fault(ids[1], None, group="ledger-updater")
    assert await ledger.channels.move_due(now_ms=2**52) == 1  # Lua in a cluster pipeline
    await _drain(ledger)
    letters = await ledger.channels.list_dead_letters()
    assert [(dl.event.event_id, dl.reason) for dl in letters] == [(ids[2], "terminal")]

    await bus.fault(ids[2], None, group="ledger-updater")
    await EventsAdmin(bus.redis, bus.settings.keys).replay(letters[0].id)  # Lua over two keys
    await _drain(ledger)
    assert await bus.effects("ledger-updater") == dict.fromkeys(ids, 1)
    assert (await bus.redis.xpending(bus.stream, "ledger-updater"))["pending"] == 0
    # Every key of the namespace is in one slot, as the cluster requires of these commands.
    keys = bus.settings.keys
    slots = {bus.redis.keyslot(k) for k in (keys.events, keys.retry, keys.dlq, keys.discarded)}
    assert len(slots) == 1


async def test_the_rate_limiter_runs_unchanged_on_a_cluster(cluster):
    client = redis_client(cluster.url, cluster=True)
    try:
        limiter = RateLimiter(client, 2, 60, fail_open=False)
        subject = f"cluster-{free_port()}"
        answers = [await limiter.check(subject) for _ in range(3)]
    finally:
        await client.aclose()
    assert [a.allowed for a in answers] == [True, True, False]
