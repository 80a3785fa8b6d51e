"""Composition root of wallet_svc."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine

from svckit.db import create_engine
from svckit.gen.wallet.v1 import wallet_service_pb2, wallet_service_pb2_grpc
from svckit.grpc_server import Registration
from svckit.idempotency import IdempotencyStore
from svckit.runtime import ServiceParts
from wallet_svc.access import ACCESS
from wallet_svc.coalescer import MovementCoalescer
from wallet_svc.config import WalletSettings
from wallet_svc.service import WalletService
from wallet_svc.servicer import MovementAnswersPb, WalletServicer
from wallet_svc.uow import WalletUnitOfWork

MIGRATIONS = Path(__file__).parent / "migrations"
SERVICE_NAME = wallet_service_pb2.DESCRIPTOR.services_by_name["WalletService"].full_name


def build(settings: WalletSettings, engine: AsyncEngine, idempotency: IdempotencyStore) -> ServiceParts:
    service = WalletService()
    read_url = settings.sqlalchemy_read_url()
    # ListMovements may be served by a standby (WALLET_DATABASE_READ_URL); balances never are, nor
    # ListWallets, which recon's wallet-to-ledger comparison reads.
    reads = create_engine(read_url, pool_size=settings.db_pool_size) if read_url else None
    uow = WalletUnitOfWork(engine, idempotency, MovementAnswersPb(), reads)
    coalescer = None
    if settings.coalesce_movements:
        coalescer = MovementCoalescer(
            service,
            uow,
            window_seconds=settings.coalesce_window_seconds,
            max_group=settings.coalesce_max_group,
            max_in_flight=settings.coalesce_max_in_flight,
        )
    servicer = WalletServicer(service, uow, coalescer)
    return ServiceParts(
        registrations=[
            Registration(wallet_service_pb2_grpc.add_WalletServiceServicer_to_server, servicer, SERVICE_NAME)
        ],
        access=ACCESS,
        on_stop=[
            *([coalescer.close] if coalescer is not None else []),
            *([reads.dispose] if reads is not None else []),
        ],
    )
