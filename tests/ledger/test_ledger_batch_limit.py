"""LEDGER_BATCH_MAX_IN_FLIGHT: PostTransactions calls beyond the limit wait in the server, then
answer exactly as they would have."""

from __future__ import annotations

import asyncio
import uuid

import psycopg

from ledger_svc import bootstrap as ledger_bootstrap
from ledger_svc.config import LedgerSettings
from svckit.db import drop_database
from svckit.gen.ledger.v1 import ledger_service_pb2 as pb
from svckit.gen.ledger.v1 import ledger_service_pb2_grpc as pb_grpc
from svckit.runtime import start_service
from tests.ledger.ledger_helpers import md, transfer, uid


def _batch(debit: str, credit: str, n: int = 3) -> pb.PostTransactionsRequest:
    return pb.PostTransactionsRequest(
        items=[
            pb.PostTransactionsItem(idempotency_key=f"i-{uid()}", transaction=transfer(debit, credit, 10 + i))
            for i in range(n)
        ]
    )


def _batch_statements(conn: psycopg.Connection) -> list[str]:
    """Wait events of the ledger_post_batch statements running now ('Lock' when blocked on a row)."""
    rows = conn.execute(
        "SELECT coalesce(wait_event_type, '') FROM pg_stat_activity"
        " WHERE datname = current_database() AND state = 'active' AND query LIKE '%%FROM ledger_post_batch(%%'"
        " AND pid <> pg_backend_pid()"
    ).fetchall()
    return [r[0] for r in rows]


async def test_calls_beyond_the_limit_wait_in_the_server_and_then_post(infra):
    name = f"{infra.prefix}_ledger_lim_{uuid.uuid4().hex[:8]}"
    handle = await start_service(
        infra.settings(LedgerSettings, database_name=name, batch_max_in_flight=1),
        ledger_bootstrap.MIGRATIONS,
        ledger_bootstrap.build,
    )
    url = infra.database_url_for(name)
    try:
        async with infra.channel(handle.address) as channel:
            stub = pb_grpc.LedgerServiceStub(channel)
            hot, sink = f"asset:hot:l{uid()}", f"revenue:sink:l{uid()}"
            others = [(f"asset:o{i}:l{uid()}", f"revenue:o{i}:l{uid()}") for i in range(3)]
            for debit, credit in [(hot, sink), *others]:  # the accounts exist before the race
                await stub.PostTransactions(_batch(debit, credit, 1), metadata=md())

            blocker = await asyncio.to_thread(psycopg.connect, url)
            watcher = await asyncio.to_thread(psycopg.connect, url, autocommit=True)
            try:
                # Hold the hot account's row so the first batch blocks inside the database.
                await asyncio.to_thread(
                    blocker.execute, "SELECT 1 FROM accounts WHERE name = %s FOR UPDATE", (hot,)
                )
                first = asyncio.ensure_future(stub.PostTransactions(_batch(hot, sink), metadata=md()))
                while await asyncio.to_thread(_batch_statements, watcher) != ["Lock"]:
                    assert not first.done(), first.result()
                    await asyncio.sleep(0.01)
                rest = [
                    asyncio.ensure_future(stub.PostTransactions(_batch(d, c), metadata=md()))
                    for d, c in others
                ]
                # Their accounts are free: without the limit they would reach the database and finish.
                await asyncio.sleep(0.5)
                assert not any(t.done() for t in rest)
                assert await asyncio.to_thread(_batch_statements, watcher) == ["Lock"]
                await asyncio.to_thread(blocker.commit)
                replies = await asyncio.gather(first, *rest)
            finally:
                await asyncio.to_thread(blocker.close)
                await asyncio.to_thread(watcher.close)
            for reply in replies:
                assert [r.WhichOneof("outcome") for r in reply.results] == ["transaction"] * 3
            balance = await stub.GetBalance(pb.GetBalanceRequest(account=hot))
            assert balance.debits_minor == 10 + (10 + 11 + 12)
    finally:
        await handle.stop(0.1)
        drop_database(url)
