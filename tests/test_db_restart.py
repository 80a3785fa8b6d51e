"""A PostgreSQL restart under running services (chaos finding 4, docs/reliability.md): every pooled
connection goes stale at once. The first statement on one must answer a retryable UNAVAILABLE
(``DATABASE_UNAVAILABLE``), never INTERNAL, and the pool must not hand out the other stale ones.

The restart is played by terminating every backend of the database (what ``pg_ctl stop -m immediate``
does to each connection), so the session's PostgreSQL, shared by the other tests, keeps running."""

from __future__ import annotations

import grpc
import psycopg
import pytest

from svckit.db import DriverPool, database_unavailable
from svckit.gen.wallet.v1 import wallet_service_pb2 as wpb
from svckit.gen.wallet.v1 import wallet_service_pb2_grpc as wpb_grpc
from svckit.grpc_errors import error_info


def _terminate_backends(server_url: str, database: str) -> int:
    with psycopg.connect(server_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = %s AND pid <> pg_backend_pid()",
            (database,),
        ).fetchall()
    return len(rows)


def _libpq(url) -> str:
    return url.set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)


async def test_a_service_answers_unavailable_not_internal_after_its_connections_are_dropped(
    services, operator_channels
):
    wallet = wpb_grpc.WalletServiceStub(operator_channels["wallet"])
    request = wpb.GetWalletRequest(seller_id="seller_pg_restart", currency="USD")
    for _ in range(3):  # idle connections in the pool
        await wallet.GetWallet(request)
    url = services["wallet"].engine.url
    assert _terminate_backends(_libpq(url), url.database) >= 1
    codes = []
    for _ in range(3):
        try:
            await wallet.GetWallet(request)
            codes.append("OK")
            break
        except grpc.aio.AioRpcError as exc:
            info = error_info(exc)
            codes.append(f"{exc.code().name} {info.reason if info else ''}")
    # One stale connection may be met (and answers a retryable error); the pool drops the rest.
    assert codes in (["OK"], ["UNAVAILABLE DATABASE_UNAVAILABLE", "OK"])


async def test_a_driver_pool_drops_every_stale_connection_after_meeting_one(services):
    engine_url = services["ledger"].engine.url
    pool = DriverPool(engine_url.render_as_string(hide_password=False), max_size=4, name="restart-test")
    try:
        for _ in range(4):
            async with pool.connection() as conn:
                await conn.execute("SELECT 1")
        assert _terminate_backends(_libpq(engine_url), engine_url.database) >= 1
        with pytest.raises(psycopg.OperationalError) as lost:
            async with pool.connection() as conn:
                await conn.execute("SELECT 1")
        assert database_unavailable(lost.value)
        for _ in range(4):  # every other connection it hands out works
            async with pool.connection() as conn:
                assert await (await conn.execute("SELECT 1")).fetchone() == (1,)
    finally:
        await pool.close()
