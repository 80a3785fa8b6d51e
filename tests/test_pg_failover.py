"""PostgreSQL fail-over under a running service (issue 17, docs/reliability.md): a primary with a
synchronous streaming standby (the dev stack's own ``EmbeddedStandby``, made by ``pg_basebackup``), a
wallet service configured with both hosts (``DATABASE_HOSTS``: libpq's ``target_session_attrs=read-write``),
clients crediting wallets under idempotency keys; the primary is killed with SIGKILL mid-load, the
standby promoted. The service must carry on by itself against the promoted standby, and every credit
it acknowledged must be there exactly once.

Throwaway data (initdb and pg_basebackup without fsync, fsync off): only the primary's processes are
killed, the standby's operating system keeps what it received. The commit still waits for the standby
(synchronous replication stays on), which is the property under test."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import psycopg
import pytest

from svckit.devstack.infra import EmbeddedPostgres, EmbeddedStandby, free_port, remove_tree
from svckit.gen.common.v1 import money_pb2
from svckit.gen.wallet.v1 import wallet_service_pb2 as wpb
from svckit.gen.wallet.v1 import wallet_service_pb2_grpc as wpb_grpc
from svckit.grpc_errors import error_info
from svckit.runtime import start_service
from svckit.testing import Infra
from wallet_svc import bootstrap as wallet_bootstrap
from wallet_svc.config import WalletSettings

STANDBY = "failover_standby"
WORKERS = 6
BEFORE_KILL = 30  # credits acknowledged by the primary before it is killed
AFTER_PROMOTION = 30  # and by the promoted standby afterwards
# Only "try again" answers are retried; anything else fails the test (the edge must map a lost
# primary, or a standby that does not take writes yet, to UNAVAILABLE).
RETRYABLE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}


@pytest.fixture
def replicated() -> Iterator[tuple[EmbeddedPostgres, EmbeddedStandby]]:
    folder = Path(tempfile.mkdtemp(prefix="mpay-failover-"))
    primary = EmbeddedPostgres(folder / "primary", port=free_port(), durable=False, sync_standby=STANDBY)
    standby = EmbeddedStandby(
        folder / "standby", port=free_port(), durable=False, primary=primary, application_name=STANDBY
    )
    try:
        primary.start()
        standby.start()
        yield primary, standby
    finally:
        standby.stop()
        primary.stop()
        remove_tree(folder)


def _sync_state(primary: EmbeddedPostgres) -> str | None:
    with psycopg.connect(primary.url, autocommit=True, connect_timeout=5) as conn:
        row = conn.execute(
            "SELECT sync_state FROM pg_stat_replication WHERE application_name = %s", (STANDBY,)
        ).fetchone()
    return row[0] if row else None


async def test_a_service_carries_on_after_its_primary_is_killed_and_loses_no_acknowledged_write(
    infra: Infra, replicated: tuple[EmbeddedPostgres, EmbeddedStandby]
) -> None:
    primary, standby = replicated
    # The standby streams and every commit waits for it before it is acknowledged.
    deadline = time.monotonic() + 15
    while _sync_state(primary) != "sync":
        assert time.monotonic() < deadline, "the standby never became synchronous"
        await asyncio.sleep(0.1)
    settings = infra.settings(
        WalletSettings,
        db_suffix=f"wallet_failover_{uuid.uuid4().hex[:6]}",
        database_url=primary.url,
        database_hosts=f"{primary.host}:{primary.port},{standby.host}:{standby.port}",
        db_pool_size=4,
    )
    handle = await start_service(settings, wallet_bootstrap.MIGRATIONS, wallet_bootstrap.build)
    channel = infra.channel(handle.address, "payment")
    wallet = wpb_grpc.WalletServiceStub(channel)
    run = uuid.uuid4().hex[:8]
    acked: dict[str, tuple[str, int]] = {}  # idempotency key -> (seller, amount), once acknowledged
    acked_before_kill: set[str] = set()
    retried: list[str] = []
    killed = asyncio.Event()
    promoted = asyncio.Event()
    stop = asyncio.Event()
    progress = asyncio.Condition()  # notified at every acknowledgement

    async def credit(key: str, seller: str, amount: int) -> None:
        request = wpb.CreditRequest(
            seller_id=seller,
            amount=money_pb2.Money(amount_minor=amount, currency="USD"),
            reference=wpb.Reference(kind=wpb.REFERENCE_KIND_PAYMENT_ORDER, id=f"po_{key}"),
        )
        give_up = time.monotonic() + 60
        while True:
            try:
                await wallet.Credit(request, metadata=[("idempotency-key", key)], timeout=5)
                acked[key] = (seller, amount)
                if not killed.is_set():
                    acked_before_kill.add(key)
                async with progress:
                    progress.notify_all()
                return
            except grpc.aio.AioRpcError as exc:
                info = error_info(exc)
                assert exc.code() in RETRYABLE, f"{key}: {exc.code().name} {info.reason if info else ''}"
                assert time.monotonic() < give_up, f"{key} never acknowledged: {exc.code().name}"
                retried.append(f"{exc.code().name} {info.reason if info else ''}")
                await asyncio.sleep(0.1)

    async def client(worker: int) -> None:
        # Each client asks again with the same key until it gets an answer, as a caller must.
        n = 0
        while not stop.is_set():
            n += 1
            await credit(f"fo_{run}_{worker}_{n}", f"seller_fo_{run}_{worker % 3}", 100 + worker * 7 + n)

    async def fail_over() -> None:
        async with progress:
            await progress.wait_for(lambda: len(acked) >= BEFORE_KILL)
        assert primary.proc is not None
        # The primary's machine is lost: the postmaster and every backend at once.
        os.killpg(primary.proc.pid, signal.SIGKILL)
        killed.set()
        await asyncio.to_thread(primary.proc.wait)
        await asyncio.to_thread(standby.promote)
        promoted.set()
        after = len(acked)
        async with progress:
            await progress.wait_for(lambda: len(acked) >= after + AFTER_PROMOTION)
        stop.set()

    try:
        await asyncio.wait_for(asyncio.gather(fail_over(), *(client(w) for w in range(WORKERS))), 90)
        assert not standby.in_recovery()
        # Every acknowledged credit is on the promoted standby exactly once, for its amount, and
        # nothing else is (each client finished the key it had started); the wallets add up.
        dsn = f"postgresql://postgres@{standby.host}:{standby.port}/{settings.database_name}"
        with psycopg.connect(dsn, autocommit=True) as conn:
            movements = conn.execute(
                "SELECT idempotency_key, seller_id, amount_minor, count(*) OVER (PARTITION BY idempotency_key)"
                " FROM wallet_movements WHERE kind = 'CREDIT'"
            ).fetchall()
            rows = conn.execute("SELECT seller_id, available_minor FROM wallets WHERE currency = 'USD'")
            wallets: dict[str, int] = {seller: available for seller, available in rows.fetchall()}
        twice = sorted({key for key, _, _, count in movements if count > 1})
        assert twice == []
        stored = {key: (seller, amount) for key, seller, amount, _ in movements}
        assert stored == acked
        assert acked_before_kill and acked_before_kill <= stored.keys()
        totals: dict[str, int] = {}
        for seller, amount in acked.values():
            totals[seller] = totals.get(seller, 0) + amount
        assert wallets == totals
    finally:
        stop.set()
        await channel.close()
        await handle.stop(0.2)
    # Not vacuous: the clients met the lost primary (and were told to try again), and got through.
    assert promoted.is_set() and retried


async def test_movement_listings_may_be_read_from_the_standby_while_balances_come_from_the_primary(
    infra: Infra, replicated: tuple[EmbeddedPostgres, EmbeddedStandby]
) -> None:
    primary, standby = replicated
    settings = infra.settings(
        WalletSettings,
        db_suffix=f"wallet_reads_{uuid.uuid4().hex[:6]}",
        database_url=primary.url,
        database_read_url=standby.url,
        db_pool_size=2,
    )
    handle = await start_service(settings, wallet_bootstrap.MIGRATIONS, wallet_bootstrap.build)
    channel = infra.channel(handle.address, "payment")
    wallet = wpb_grpc.WalletServiceStub(channel)
    run = uuid.uuid4().hex[:8]

    async def credit(seller: str, amount: int) -> None:
        await wallet.Credit(
            wpb.CreditRequest(
                seller_id=seller,
                amount=money_pb2.Money(amount_minor=amount, currency="USD"),
                reference=wpb.Reference(kind=wpb.REFERENCE_KIND_PAYMENT_ORDER, id=f"po_{seller}"),
            ),
            metadata=[("idempotency-key", f"rd_{seller}")],
        )

    async def listed(seller: str) -> int:
        movements = await wallet.ListMovements(wpb.ListMovementsRequest(seller_id=seller, currency="USD"))
        return len(movements.movements)

    async def until_listed(seller: str) -> None:
        deadline = time.monotonic() + 20
        while True:
            with contextlib.suppress(grpc.aio.AioRpcError):  # the database not replayed yet
                if await listed(seller) == 1:
                    return
            assert time.monotonic() < deadline, f"{seller} never listed by the standby"
            await asyncio.sleep(0.1)

    def replay(action: str) -> None:
        with psycopg.connect(standby.url, autocommit=True) as conn:
            conn.execute(f"SELECT pg_wal_replay_{action}()")

    try:
        first, second = f"seller_rd_{run}_a", f"seller_rd_{run}_b"
        await credit(first, 100)
        await until_listed(first)  # the standby has replayed the database and its first credit
        replay("pause")
        try:
            await credit(second, 250)
            # The balance comes from the primary, and so does ListWallets (recon compares the wallets
            # with the ledger through it); the movements from the paused standby, which lags.
            got = await wallet.GetWallet(wpb.GetWalletRequest(seller_id=second, currency="USD"))
            assert got.wallet.available.amount_minor == 250
            wallets = await wallet.ListWallets(wpb.ListWalletsRequest(seller_id=second))
            assert [w.available.amount_minor for w in wallets.wallets] == [250]
            assert await listed(second) == 0
            # A lookup by reference decides reconciliation's checks: it reads the primary, lag or not.
            by_reference = await wallet.ListMovements(
                wpb.ListMovementsRequest(seller_id=second, currency="USD", reference_id=f"po_{second}")
            )
            assert len(by_reference.movements) == 1
        finally:
            replay("resume")
        await until_listed(second)
    finally:
        await channel.close()
        await handle.stop(0.2)
