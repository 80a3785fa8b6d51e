"""Start and stop one service process: migrations, engine, gRPC server, metrics, background tasks.

Each service's ``bootstrap.py`` (its composition root) builds its servicers from an engine and hands
them here; tests call the same ``start_service`` in-process on port 0.
"""

from __future__ import annotations

import asyncio
import cProfile
import gc
import os
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncEngine

from svckit.access import AccessTable
from svckit.config import ServiceSettings
from svckit.db import create_engine, migrate_async
from svckit.grpc_server import Registration, RunningServer, run_until_signalled, start_server
from svckit.idempotency import IdempotencyStore
from svckit.logging import configure_logging, get_logger
from svckit.metrics import serve_metrics
from svckit.tls import security_for

log = get_logger(__name__)

TASK_STOP_SECONDS = 5.0
"""How long a stop waits for its background jobs to end once cancelled."""

# A composition root's build takes its own service's settings class, so the two are bound together.
S = TypeVar("S", bound=ServiceSettings)


def awaiting(task: asyncio.Task[Any]) -> str:
    """Where a suspended task waits: its chain of awaited coroutines, outermost first."""
    where: list[str] = []
    coro: Any = task.get_coro()  # a coroutine, then whatever it awaits (a generator-based awaitable too)
    while coro is not None:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
        if frame is not None:
            where.append(f"{frame.f_code.co_name} ({frame.f_code.co_filename}:{frame.f_lineno})")
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
    return " -> ".join(where)


def stop_if_cancelled() -> None:
    """Raise CancelledError when the running task was asked to stop. A loop calls it where it catches a failure
    and before it sleeps: a library that turns its cancellation into another error (a dropped connection, say)
    or swallows it (Python 3.11's ``asyncio.wait_for`` does when its result arrives with the cancellation)
    would otherwise leave the job running for ever."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


@dataclass
class ServiceParts:
    """What a composition root returns: the servicers to mount, who may call them, and the background
    jobs to run."""

    registrations: Sequence[Registration]
    access: AccessTable | None
    # Coroutine functions, not any awaitable: each is run with asyncio.create_task.
    background: Sequence[Callable[[], Coroutine[Any, Any, None]]] = ()
    on_stop: Sequence[Callable[[], Awaitable[None]]] = ()


@dataclass
class ServiceHandle:
    settings: ServiceSettings
    engine: AsyncEngine
    server: RunningServer
    tasks: list[asyncio.Task] = field(default_factory=list)
    on_stop: Sequence[Callable[[], Awaitable[None]]] = ()

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def address(self) -> str:
        return f"{self.settings.grpc_host}:{self.server.port}"

    async def stop(self, grace_seconds: float | None = None) -> None:
        grace = self.settings.shutdown_grace_seconds if grace_seconds is None else grace_seconds
        await self.server.stop(grace)
        await self.close_resources()

    async def close_resources(self) -> None:
        for task in self.tasks:
            task.cancel()
        if self.tasks:
            # Bounded: a background job that does not end on its cancellation must not hold the stop (a
            # stuck shutdown is killed by the orchestrator anyway, with nothing logged); where it is stuck is.
            _, stuck = await asyncio.wait(self.tasks, timeout=TASK_STOP_SECONDS)
            if stuck:
                others = [t for t in asyncio.all_tasks() if not t.done() and t not in stuck]
                for task in stuck:
                    log.error("background task did not stop on its cancellation; abandoned",
                              task=task.get_name(), awaiting=awaiting(task),
                              other_tasks=[f"{t.get_name()}: {awaiting(t)}" for t in others[:30]])  # fmt: skip
            for task in self.tasks:
                if task.done() and not task.cancelled():
                    task.exception()  # retrieved: a job that failed has logged it already
        for hook in self.on_stop:
            await hook()
        await self.engine.dispose()


async def start_service(
    settings: S,
    migrations_dir: Path,
    build: Callable[[S, AsyncEngine, IdempotencyStore], ServiceParts],
) -> ServiceHandle:
    security = security_for(settings)  # before anything else: a missing certificate stops the start
    url = settings.sqlalchemy_url()
    if settings.migrate_on_start:
        await migrate_async(migrations_dir, url)
    engine = create_engine(url, pool_size=settings.db_pool_size)
    store = IdempotencyStore(engine)
    parts = build(settings, engine, store)
    server = await start_server(
        parts.registrations, settings.grpc_host, settings.grpc_port, security=security, access=parts.access
    )
    handle = ServiceHandle(settings=settings, engine=engine, server=server, on_stop=parts.on_stop)
    handle.tasks.append(
        asyncio.create_task(
            store.purge_forever(
                settings.idempotency_retention_hours, settings.idempotency_purge_interval_seconds
            ),
            name=f"{settings.service_name}-idempotency-purge",
        )
    )
    for job in parts.background:
        handle.tasks.append(asyncio.create_task(job(), name=f"{settings.service_name}-{job.__name__}"))
    log.info(
        "serving",
        service=settings.service_name,
        address=handle.address,
        metrics_port=settings.metrics_port,
        identity=security.identity or "none (plaintext)",
    )
    return handle


PROFILE_FILE_ENV = "SVC_PROFILE_FILE"
"""Set in a service process's environment: it runs under cProfile and writes its statistics there."""

# Young-generation collections per allocated container objects; CPython's default is 700.
GC_GEN0_THRESHOLD = 7000


def settle_heap() -> None:
    """Tune the cyclic garbage collector of a serving process, once everything is loaded.

    Everything built at start-up (modules, SQLAlchemy and protobuf metadata, pools) lives as long as
    the process, yet every full collection would walk all of it again. Frozen, those objects are
    skipped by every collection; the higher young-generation threshold makes collections rarer (a
    call's short-lived objects are freed by reference counting long before). The ledger benchmark
    shows the collector's share of server CPU per posting.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_GEN0_THRESHOLD, *gc.get_threshold()[1:])


def main(
    settings: S,
    migrations_dir: Path,
    build: Callable[[S, AsyncEngine, IdempotencyStore], ServiceParts],
) -> None:
    """Process entry point: serve until SIGTERM/SIGINT, then drain and exit."""
    configure_logging(settings.service_name, settings.log_level, settings.log_format)
    serve_metrics(settings.metrics_port)

    async def _run() -> None:
        handle = await start_service(settings, migrations_dir, build)
        settle_heap()
        await run_until_signalled(handle.server, settings.shutdown_grace_seconds, handle.close_resources)

    # grpc.aio runs its own poller on the default asyncio loop; uvloop is not supported there.
    profile_file = os.environ.get(PROFILE_FILE_ENV)
    if not profile_file:
        asyncio.run(_run())
        return
    # A benchmark's switch (benchmarks/bench_payouts.py --profile): the whole process under
    # cProfile, its statistics written when it stops.
    profiler = cProfile.Profile()
    try:
        profiler.runcall(asyncio.run, _run())
    finally:
        profiler.dump_stats(profile_file)
