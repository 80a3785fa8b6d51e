"""Composition root of ledger_svc: the only place that wires concrete dependencies together."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine

from ledger_svc.access import ACCESS
from ledger_svc.chainer import chain_forever
from ledger_svc.coalescer import PostingCoalescer
from ledger_svc.config import LedgerSettings
from ledger_svc.service import LedgerService
from ledger_svc.servicer import LedgerServicer
from ledger_svc.uow import LedgerUnitOfWork
from ledger_svc.wire import PostingAnswers
from svckit.db import DriverPool
from svckit.gen.ledger.v1 import ledger_service_pb2, ledger_service_pb2_grpc
from svckit.grpc_server import Registration
from svckit.idempotency import IdempotencyStore
from svckit.runtime import ServiceParts

MIGRATIONS = Path(__file__).parent / "migrations"
SERVICE_NAME = ledger_service_pb2.DESCRIPTOR.services_by_name["LedgerService"].full_name


def build(settings: LedgerSettings, engine: AsyncEngine, idempotency: IdempotencyStore) -> ServiceParts:
    service = LedgerService(settings.non_negative_prefixes)
    # PostTransactions claims its call key on a connection held for the whole call (see the
    # servicer): claims get a pool of their own so they never starve the statements they wait for.
    claims = DriverPool(
        settings.sqlalchemy_url(), max_size=settings.db_pool_size, name="ledger-claims", session_locks=True
    )
    uow = LedgerUnitOfWork(engine, IdempotencyStore(engine, claims), PostingAnswers())
    coalescer = None
    if settings.coalesce_postings:
        # One connection per group in flight; groups never wait for a connection.
        statements = DriverPool(
            settings.sqlalchemy_url(), max_size=settings.coalesce_max_in_flight, name="ledger-coalescer"
        )
        coalescer = PostingCoalescer(
            service,
            uow,
            statements,
            window_seconds=settings.coalesce_window_seconds,
            max_group=settings.coalesce_max_group,
            max_in_flight=settings.coalesce_max_in_flight,
        )
    servicer = LedgerServicer(
        service,
        uow,
        coalescer,
        batch_max_in_flight=settings.batch_max_in_flight,
    )

    async def chainer() -> None:
        await chain_forever(service, uow, settings.chain_interval_seconds, settings.chain_batch_size)

    return ServiceParts(
        registrations=[
            Registration(ledger_service_pb2_grpc.add_LedgerServiceServicer_to_server, servicer, SERVICE_NAME)
        ],
        access=ACCESS,
        background=[chainer],
        on_stop=[claims.close] + ([coalescer.close] if coalescer is not None else []),
    )
