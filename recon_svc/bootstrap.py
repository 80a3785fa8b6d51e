"""Composition root of recon_svc."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncEngine

from recon_svc.access import ACCESS
from recon_svc.books import GrpcLedgerReader, GrpcWalletReader
from recon_svc.check_retries import CheckRetrier
from recon_svc.config import ReconSettings
from recon_svc.record_checks import RecordChecker
from recon_svc.record_sources import GrpcRecordSources
from recon_svc.service import ReconService, compare_wallets_with_ledger
from recon_svc.servicer import ReconServicer
from recon_svc.settlement.cli import rules_from
from recon_svc.settlement.grpc import SettlementDeps
from recon_svc.settlement.nightly import NightlyScheduler, reconcile_day
from recon_svc.settlement.records import GrpcPaymentRecords, GrpcSettlementBooker
from recon_svc.uow import ReconUnitOfWork
from svckit.gen.ledger.v1 import ledger_service_pb2_grpc
from svckit.gen.payments.v1 import payment_service_pb2_grpc, payout_service_pb2_grpc
from svckit.gen.recon.v1 import recon_service_pb2, recon_service_pb2_grpc
from svckit.gen.wallet.v1 import wallet_service_pb2_grpc
from svckit.grpc_server import Registration
from svckit.idempotency import IdempotencyStore
from svckit.runtime import ServiceParts
from svckit.tls import security_for

MIGRATIONS = Path(__file__).parent / "migrations"
SERVICE_NAME = recon_service_pb2.DESCRIPTOR.services_by_name["ReconService"].full_name


def build(settings: ReconSettings, engine: AsyncEngine, idempotency: IdempotencyStore) -> ServiceParts:
    security = security_for(settings)  # recon calls the books as the `recon` identity
    wallet_channel = security.aio_channel(settings.wallet_addr)
    ledger_channel = security.aio_channel(settings.ledger_addr)
    payment_channel = security.aio_channel(settings.payment_addr)
    wallets = GrpcWalletReader(
        wallet_service_pb2_grpc.WalletServiceStub(wallet_channel), settings.upstream_deadline_seconds
    )
    ledger = GrpcLedgerReader(
        ledger_service_pb2_grpc.LedgerServiceStub(ledger_channel), settings.upstream_deadline_seconds
    )
    record_checks = RecordChecker(
        engine,
        GrpcRecordSources(
            payment_service_pb2_grpc.PaymentServiceStub(payment_channel),
            payout_service_pb2_grpc.PayoutServiceStub(payment_channel),
            ledger_service_pb2_grpc.LedgerServiceStub(ledger_channel),
            wallet_service_pb2_grpc.WalletServiceStub(wallet_channel),
            settings.upstream_deadline_seconds,
        ),
        # A day's run also compares every wallet with its ledger account.
        totals=lambda: compare_wallets_with_ledger(wallets, ledger),
    )
    service = ReconService(wallets, ledger, record_checks)
    servicer = ReconServicer(service, ReconUnitOfWork(engine))

    records = GrpcPaymentRecords(
        payment_service_pb2_grpc.PaymentServiceStub(payment_channel),
        settings.upstream_deadline_seconds,
        # The payment service serves PayoutService next to PaymentService: a transfer's pay-out.
        payout_service_pb2_grpc.PayoutServiceStub(payment_channel),
    )
    booker = GrpcSettlementBooker(
        ledger_service_pb2_grpc.LedgerServiceStub(ledger_channel), settings.upstream_deadline_seconds
    )
    deps = SettlementDeps(engine, idempotency, records, booker, rules_from(settings), settings, record_checks)
    servicer.settlement = deps
    background = []
    if settings.nightly_at is not None:
        scheduler = NightlyScheduler(
            engine,
            lambda day: reconcile_day(deps, day),
            at=settings.nightly_at,
            zone=ZoneInfo(settings.timezone),
            account=settings.nightly_account,
            catch_up_days=settings.nightly_catch_up_days,
            lease=dt.timedelta(seconds=settings.nightly_lease_seconds),
            retry=dt.timedelta(seconds=settings.nightly_retry_seconds),
            retry_max=dt.timedelta(seconds=settings.nightly_retry_max_seconds),
        )

        async def nightly() -> None:
            await scheduler.forever(settings.nightly_tick_seconds)

        background.append(nightly)

    # A settlement day's internal checks that failed at the end of its run (nightly or StartSettlementRun by
    # date) are retried with the nightly run's back-off, whether or not the nightly run is on.
    retrier = CheckRetrier(
        engine,
        record_checks,
        retry=dt.timedelta(seconds=settings.nightly_retry_seconds),
        retry_max=dt.timedelta(seconds=settings.nightly_retry_max_seconds),
        lease=dt.timedelta(seconds=settings.nightly_lease_seconds),
    )

    async def check_retries() -> None:
        await retrier.forever(settings.nightly_tick_seconds)

    background.append(check_retries)

    async def close() -> None:
        await wallet_channel.close()
        await ledger_channel.close()
        await payment_channel.close()

    return ServiceParts(
        registrations=[
            Registration(recon_service_pb2_grpc.add_ReconServiceServicer_to_server, servicer, SERVICE_NAME)
        ],
        access=ACCESS,
        background=background,
        on_stop=[close],
    )
