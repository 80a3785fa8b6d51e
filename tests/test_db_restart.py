"""A PostgreSQL restart under running services (chaos finding 4, docs/reliability.md): every pooled
connection goes stale at once. The first statement on one must answer a retryable UNAVAILABLE
(``DATABASE_UNAVAILABLE``), never INTERNAL, and the pool must not hand out the other stale ones.

The restart is played by terminating every backend of the database (what ``pg_ctl stop -m immediate``
does to each connection), so the session's PostgreSQL, shared by the other tests, keeps running. The
database is one of this module's own, served by a wallet service of its own: the session's services,
which the next tests use, never see their connections dropped."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import psycopg
import pytest
import pytest_asyncio

from svckit.db import DriverPool, database_unavailable
from svckit.gen.wallet.v1 import wallet_service_pb2 as wpb
from svckit.gen.wallet.v1 import wallet_service_pb2_grpc as wpb_grpc
from svckit.grpc_errors import error_info
from svckit.runtime import ServiceHandle, start_service
from svckit.testing import Infra
from wallet_svc import bootstrap as wallet_bootstrap
from wallet_svc.config import WalletSettings


@pytest_asyncio.fixture
async def own_wallet(infra: Infra) -> AsyncIterator[tuple[ServiceHandle, grpc.aio.Channel]]:
    settings = infra.settings(WalletSettings, db_suffix="wallet_pg_restart")
    handle = await start_service(settings, wallet_bootstrap.MIGRATIONS, wallet_bootstrap.build)
    channel = infra.channel(handle.address, "operator")
    yield handle, channel
    await channel.close()
    await handle.stop(0.2)


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


async def test_a_service_answers_unavailable_not_internal_after_its_connections_are_dropped(own_wallet):
    handle, channel = own_wallet
    wallet = wpb_grpc.WalletServiceStub(channel)
    request = wpb.GetWalletRequest(seller_id="seller_pg_restart", currency="USD")
    for _ in range(3):  # idle connections in the pool
        await wallet.GetWallet(request)
    url = handle.engine.url
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


async def test_a_driver_pool_drops_every_stale_connection_after_meeting_one(own_wallet):
    engine_url = own_wallet[0].engine.url
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
