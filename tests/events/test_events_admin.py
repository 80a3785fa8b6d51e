"""Operating the backbone: the admin gRPC service mounted on a real server, the CLI, and safe trimming."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import grpc
import pytest
from typer.testing import CliRunner

from payment_svc import access as payment_access
from svckit.events import streams
from svckit.events.cli import app
from svckit.events.servicer import admin_registration
from svckit.gen.events.v1 import events_admin_service_pb2 as pb
from svckit.gen.events.v1 import events_admin_service_pb2_grpc as pb_grpc
from svckit.grpc_errors import error_info
from svckit.grpc_server import start_server


async def _drain(consumer) -> None:
    while await consumer.process_once(block_ms=1):
        pass


async def _dead_letters(bus, count: int) -> list[str]:
    """Commit ``count`` events that ledger-updater cannot process; return their ids."""
    ids = await bus.add_events(count)
    for event_id in ids:
        await bus.fault(event_id, "terminal", group="ledger-updater")
    await bus.relay().drain()
    await bus.consumer("notifications").ensure_group()
    await _drain(bus.consumer("ledger-updater"))
    return ids


@pytest.fixture
async def admin_stub(infra, bus):
    server = await start_server(
        [admin_registration(bus.redis, bus.settings.keys)],
        "127.0.0.1",
        0,
        security=infra.security("payment"),
        access=payment_access.ACCESS,
    )
    channel = infra.channel(f"127.0.0.1:{server.port}", "operator")
    yield pb_grpc.EventsAdminServiceStub(channel)
    await channel.close()
    await server.stop(0)


async def test_list_streams_shows_groups_with_pending_and_lag(bus, admin_stub):
    await _dead_letters(bus, 2)
    await bus.add_events(3)
    await bus.relay().drain()
    reply = await admin_stub.ListStreams(pb.ListStreamsRequest())
    assert [s.name for s in reply.streams] == [bus.stream]
    stream = reply.streams[0]
    assert stream.length == 5
    groups = {g.name: g for g in stream.groups}
    assert set(groups) == {"ledger-updater", "notifications"}
    assert groups["ledger-updater"].lag == 3  # the three new events are not delivered yet
    assert groups["ledger-updater"].pending_count == 0
    assert groups["notifications"].lag == 5
    assert reply.dead_letter_count == 2
    assert reply.scheduled_retry_count == 0


async def test_dead_letters_are_listed_shown_replayed_and_discarded(bus, admin_stub):
    ids = await _dead_letters(bus, 3)
    page1 = await admin_stub.ListDeadLetters(pb.ListDeadLettersRequest(page_size=2))
    page2 = await admin_stub.ListDeadLetters(
        pb.ListDeadLettersRequest(page_size=2, page_token=page1.next_page_token)
    )
    letters = [*page1.dead_letters, *page2.dead_letters]
    assert [d.event.event_id for d in letters] == ids and page2.next_page_token == ""

    shown = (await admin_stub.GetDeadLetter(pb.GetDeadLetterRequest(id=letters[0].id))).dead_letter
    assert shown.group == "ledger-updater" and shown.stream == bus.stream and shown.reason == "terminal"
    assert json.loads(shown.event.payload_json) == {"n": 0}
    assert shown.event.type == "demo.happened" and shown.event.occur_time.seconds > 0
    assert [a.attempt for a in shown.attempts] == [1] and "TerminalError" in shown.attempts[0].error
    assert shown.last_error == shown.attempts[0].error

    with pytest.raises(grpc.aio.AioRpcError) as err:
        await admin_stub.DiscardDeadLetter(pb.DiscardDeadLetterRequest(id=letters[1].id, reason="  "))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(err.value).reason == "DISCARD_REASON_REQUIRED"

    discarded = await admin_stub.DiscardDeadLetter(
        pb.DiscardDeadLetterRequest(
            id=letters[1].id, reason="duplicate order, refunded by hand", operator="ops"
        )
    )
    assert discarded.event_id == ids[1]
    audit = await bus.redis.xrange(bus.settings.keys.discarded)
    assert audit[0][1]["reason"] == "duplicate order, refunded by hand" and audit[0][1]["operator"] == "ops"

    await bus.fault(ids[0], None, group="ledger-updater")
    await bus.fault(ids[2], None, group="ledger-updater")
    replayed = await admin_stub.ReplayDeadLetter(pb.ReplayDeadLetterRequest(id=letters[0].id))
    assert replayed.stream_entry_id
    rest = await admin_stub.ReplayAllDeadLetters(pb.ReplayAllDeadLettersRequest(group="ledger-updater"))
    assert rest.replayed_count == 1
    await _drain(bus.consumer("ledger-updater"))
    assert await bus.effects("ledger-updater") == {ids[0]: 1, ids[2]: 1}

    for rpc, request in [
        (admin_stub.GetDeadLetter, pb.GetDeadLetterRequest(id=letters[0].id)),
        (admin_stub.ReplayDeadLetter, pb.ReplayDeadLetterRequest(id=letters[0].id)),
        (admin_stub.DiscardDeadLetter, pb.DiscardDeadLetterRequest(id=letters[1].id, reason="again")),
    ]:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await rpc(request)
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
        assert error_info(err.value).reason == "DEAD_LETTER_NOT_FOUND"
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await admin_stub.GetDeadLetter(pb.GetDeadLetterRequest(id="not-an-id"))
    assert error_info(err.value).reason == "INVALID_DEAD_LETTER_ID"


async def test_cli_lists_shows_discards_and_replays(bus):
    ids = await _dead_letters(bus, 2)
    common = ["--namespace", bus.settings.namespace, "--redis-url", bus.settings.redis_url]
    runner = CliRunner()

    # The CLI runs its own event loop, so run it in a thread (pytest's loop is running here).
    async def cli(*args: str):
        return await asyncio.to_thread(runner.invoke, app, [*args, *common])

    listed = await cli("dlq", "list")
    assert listed.exit_code == 0, listed.output
    assert ids[0] in listed.output and ids[1] in listed.output and "2 dead letter(s)" in listed.output
    letters = await bus.consumer("x").channels.list_dead_letters()

    shown = await cli("dlq", "show", letters[0].id)
    assert shown.exit_code == 0
    assert json.loads(shown.output)["event"]["event_id"] == ids[0]

    refused = await cli("dlq", "discard", letters[0].id, "--reason", "")
    assert refused.exit_code == 1 and "DISCARD_REASON_REQUIRED" in refused.output

    discarded = await cli("dlq", "discard", letters[0].id, "--reason", "test data")
    assert discarded.exit_code == 0 and "discarded" in discarded.output

    await bus.fault(ids[1], None, group="ledger-updater")
    replayed = await cli("dlq", "replay", "--all")
    assert replayed.exit_code == 0 and "replayed 1" in replayed.output
    await _drain(bus.consumer("ledger-updater"))
    assert await bus.effects("ledger-updater") == {ids[1]: 1}

    # And as an operator runs it: a real process.
    out = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "svckit.events", "streams", *common],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert (
        bus.stream in out.stdout and "group ledger-updater" in out.stdout and "dead letters: 0" in out.stdout
    )


async def test_trimming_never_removes_entries_a_group_still_needs(bus):
    ids = await bus.add_events(10)
    await bus.relay().drain()
    slow = bus.consumer("slow", consumer_batch_size=4)
    fast = bus.consumer("fast")
    await slow.ensure_group()
    await fast.ensure_group()
    await _drain(fast)
    # "slow" holds 4 unacknowledged deliveries; 6 entries were never delivered to it.
    await bus.redis.xreadgroup("slow", "s1", {bus.stream: ">"}, count=4)
    removed = await streams.trim(
        bus.redis, bus.stream, max_len=1, max_age_seconds=1, approximate=False, now_ms=2**50
    )
    assert removed == 0
    assert await bus.redis.xlen(bus.stream) == 10

    # s1 acknowledges its first two deliveries: those two (and only those) may go.
    first_two = [entry_id for entry_id, _ in (await bus.redis.xrange(bus.stream))[:2]]
    await bus.redis.xack(bus.stream, "slow", *first_two)
    removed = await streams.trim(
        bus.redis, bus.stream, max_len=1, max_age_seconds=1, approximate=False, now_ms=2**50
    )
    assert removed == 2
    remaining = [f["event_id"] for _, f in await bus.redis.xrange(bus.stream)]
    assert remaining == ids[2:]

    # By length only, with everything acknowledged: keeps the newest max_len.
    s1 = bus.consumer("slow", "s1")
    await s1.process_once(own_pending=True)  # its two remaining deliveries
    await _drain(s1)  # and the six never delivered
    removed = await streams.trim(bus.redis, bus.stream, max_len=3, max_age_seconds=10**9, approximate=False)
    assert removed == 5
    assert [f["event_id"] for _, f in await bus.redis.xrange(bus.stream)] == ids[7:]


async def test_a_stream_without_groups_is_not_trimmed(bus):
    await bus.add_events(5)
    await bus.relay().drain()
    assert await streams.trim(bus.redis, bus.stream, max_len=1, max_age_seconds=1, approximate=False) == 0
    assert await bus.redis.xlen(bus.stream) == 5


async def test_an_unreachable_valkey_answers_unavailable_not_internal(infra, bus):
    """Chaos seed 123: after Valkey was killed and restarted, ListDeadLetters met a connection the
    restart had closed and answered INTERNAL, which a client does not retry; a lost or refused
    connection to Valkey is a retryable UNAVAILABLE, as a lost database connection is."""
    from svckit.devstack.infra import free_port
    from svckit.redisclient import redis_client

    nowhere = redis_client(f"redis://127.0.0.1:{free_port()}/0", decode_responses=True)
    server = await start_server(
        [admin_registration(nowhere, bus.settings.keys)],
        "127.0.0.1",
        0,
        security=infra.security("payment"),
        access=payment_access.ACCESS,
    )
    channel = infra.channel(f"127.0.0.1:{server.port}", "operator")
    try:
        stub = pb_grpc.EventsAdminServiceStub(channel)
        for call in (
            lambda: stub.ListDeadLetters(pb.ListDeadLettersRequest(page_size=10), timeout=10),
            lambda: stub.ListStreams(pb.ListStreamsRequest(), timeout=10),
        ):
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await call()
            info = error_info(raised.value)
            assert (raised.value.code(), info.reason if info else None) == (
                grpc.StatusCode.UNAVAILABLE,
                "UPSTREAM_UNAVAILABLE",
            )
    finally:
        await channel.close()
        await server.stop(0)
        await nowhere.aclose()
