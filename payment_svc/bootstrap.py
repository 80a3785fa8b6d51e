"""Composition root of payment_svc: the only place that wires concrete dependencies together."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine

from payment_svc.access import ACCESS
from payment_svc.books_grpc import GrpcLedger, GrpcWallets
from payment_svc.config import PaymentSettings
from payment_svc.payouts.books import Books
from payment_svc.payouts.deps import PayoutDeps
from payment_svc.payouts.repository import PayoutStore
from payment_svc.payouts.service import Payouts
from payment_svc.payouts.servicer import PayoutServicer
from payment_svc.psp import PspPort, StripePsp
from payment_svc.risk import RiskProvider, RuleBasedRisk, RuleLimits
from payment_svc.service import PaymentService
from payment_svc.servicer import PaymentServicer
from payment_svc.settlement import OutboxSettlement, SettlementHandler
from payment_svc.uow import PgUnitsOfWork
from svckit.db import DriverPool
from svckit.events import Consumer, EventsSettings, Keys, Relay, admin_registration
from svckit.gen.ledger.v1 import ledger_service_pb2_grpc
from svckit.gen.payments.v1 import (
    payment_service_pb2,
    payment_service_pb2_grpc,
    payout_service_pb2,
    payout_service_pb2_grpc,
)
from svckit.gen.wallet.v1 import wallet_service_pb2_grpc
from svckit.grpc_server import Registration
from svckit.idempotency import IdempotencyStore
from svckit.psp_signature import verify_stripe_signature
from svckit.redisclient import redis_client
from svckit.runtime import ServiceParts
from svckit.tls import security_for

MIGRATIONS = Path(__file__).parent / "migrations"
SERVICE_NAME = payment_service_pb2.DESCRIPTOR.services_by_name["PaymentService"].full_name
PAYOUT_SERVICE_NAME = payout_service_pb2.DESCRIPTOR.services_by_name["PayoutService"].full_name


def build_risk(settings: PaymentSettings) -> RiskProvider:
    return RuleBasedRisk(
        RuleLimits(
            review_above_minor=settings.risk_review_above_minor,
            decline_above_minor=settings.risk_decline_above_minor,
            velocity_window_seconds=settings.risk_velocity_window_seconds,
            velocity_max_checkouts=settings.risk_velocity_max_checkouts,
            velocity_max_amount_minor=settings.risk_velocity_max_amount_minor,
            blocked_buyers=frozenset(settings.risk_blocked_buyers),
            blocked_sellers=frozenset(settings.risk_blocked_sellers),
        )
    )


def build_psp(settings: PaymentSettings) -> PspPort:
    return StripePsp(
        api_key=settings.psp_api_key.get_secret_value(),
        base_url=settings.psp_base_url,
        timeout_seconds=settings.psp_timeout_seconds,
        max_network_retries=settings.psp_max_network_retries,
    )


def build_psp_event_verifier(settings: PaymentSettings) -> Callable[[bytes, str], None]:
    """Checks a PSP event's signature with this service's own webhook secrets (see HandlePspEvent)."""
    secrets = [s.get_secret_value() for s in settings.psp_webhook_secrets]
    tolerance = settings.psp_webhook_tolerance_seconds
    return lambda payload, header: verify_stripe_signature(payload, header, secrets, tolerance)


def events_settings(settings: PaymentSettings) -> EventsSettings:
    return EventsSettings(
        redis_url=settings.redis_url,
        redis_cluster=settings.redis_cluster,
        namespace=settings.events_namespace,
    )


def build_driver_pool(settings: PaymentSettings, purpose: str, session_locks: bool = False) -> DriverPool:
    return DriverPool(
        settings.sqlalchemy_url(),
        max_size=settings.db_pool_size,
        name=f"payments-{purpose}",
        session_locks=session_locks,
    )


def build_payouts(
    settings: PaymentSettings, engine: AsyncEngine, psp: PspPort, driver: DriverPool | None = None
) -> Payouts:
    """Pay-outs, calling the wallet and the ledger as the ``payment`` identity (channels closed with it);
    ``driver`` (not owned) records the PSP's pay-out facts in one statement each."""
    security = security_for(settings)
    wallet_channel = security.aio_channel(settings.wallet_addr)
    ledger_channel = security.aio_channel(settings.ledger_addr)
    books = Books(
        wallet_service_pb2_grpc.WalletServiceStub(wallet_channel),
        ledger_service_pb2_grpc.LedgerServiceStub(ledger_channel),
        settings.settlement_deadline_seconds,
    )
    stream = Keys(events_settings(settings).namespace).events  # pay-out events next to the orders'
    payouts = Payouts(PayoutDeps(PayoutStore(engine, stream, driver), books, psp, settings))
    payouts.on_close(wallet_channel.close, ledger_channel.close)
    return payouts


def build_service(
    settings: PaymentSettings, engine: AsyncEngine, driver: DriverPool | None = None
) -> PaymentService:
    """The payment service with its PSP, risk provider, settlement sink and pay-outs (also used by
    tools and tests). It owns ``driver`` (closed with the service); a new pool is made when none is given."""
    keys = Keys(events_settings(settings).namespace)
    psp = build_psp(settings)
    driver = driver or build_driver_pool(settings, "statements")
    return PaymentService(
        PgUnitsOfWork(engine, driver),
        psp,
        build_risk(settings),
        settings,
        settlement=OutboxSettlement(keys.events),
        payouts=build_payouts(settings, engine, psp, driver),
    )


def build_settlement_handler(
    wallet: wallet_service_pb2_grpc.WalletServiceStub,
    ledger: ledger_service_pb2_grpc.LedgerServiceStub,
    engine: AsyncEngine,
    deadline_seconds: float,
) -> SettlementHandler:
    """The settlement consumer's handler over the books' gRPC stubs (also used by tests). Its units of
    work are transactions on the engine: it runs no one-statement unit of work, so no driver pool."""
    return SettlementHandler(
        GrpcWallets(wallet, deadline_seconds),
        GrpcLedger(ledger, deadline_seconds),
        PgUnitsOfWork(engine),
    )


def build(settings: PaymentSettings, engine: AsyncEngine, idempotency: IdempotencyStore) -> ServiceParts:
    events = events_settings(settings)
    redis = redis_client(events.redis_url, events.redis_cluster, decode_responses=True)
    keys = Keys(events.namespace)
    service = build_service(settings, engine)
    # A long claim holds its connection for a whole checkout while the checkout's own statements
    # need others: claims get a pool of their own, so a burst of checkouts can never hold every
    # connection and wait for one more. (The store handed in by the runtime keeps purging keys.)
    # Its size bounds the checkouts this process runs at once; more wait for a connection (up to
    # 30 s). Measured: a bound of 20 settles ~10 % more orders/s on two cores than 40, which only
    # adds contention.
    claims = build_driver_pool(settings, "claims", session_locks=True)
    claims_store = IdempotencyStore(engine, claims)
    servicer = PaymentServicer(service, claims_store, build_psp_event_verifier(settings))
    assert service.payouts is not None  # build_service always builds them
    payout_servicer = PayoutServicer(service.payouts, claims_store)
    security = security_for(settings)  # settlement calls the books as the `payment` identity
    wallet_channel = security.aio_channel(settings.wallet_addr)
    ledger_channel = security.aio_channel(settings.ledger_addr)
    background = [
        service.janitor_forever,
        service.payouts.janitor.janitor_forever,
        service.payouts.inbox.inbox_forever,
    ]
    if settings.payout_scheduler_enabled:
        background.append(service.payouts.scheduler.scheduler_forever)
    if settings.run_settlement:
        handler = build_settlement_handler(
            wallet_service_pb2_grpc.WalletServiceStub(wallet_channel),
            ledger_service_pb2_grpc.LedgerServiceStub(ledger_channel),
            engine,
            settings.settlement_deadline_seconds,
        )
        consumer = Consumer(
            redis=redis, engine=engine, settings=events, group="settlement", batch_handler=handler
        )
        background += [Relay(engine, redis, events).run, consumer.run]

    async def close() -> None:
        await service.close()
        await claims.close()
        await wallet_channel.close()
        await ledger_channel.close()
        await redis.aclose()

    return ServiceParts(
        registrations=[
            Registration(
                payment_service_pb2_grpc.add_PaymentServiceServicer_to_server, servicer, SERVICE_NAME
            ),
            Registration(
                payout_service_pb2_grpc.add_PayoutServiceServicer_to_server,
                payout_servicer,
                PAYOUT_SERVICE_NAME,
            ),
            admin_registration(redis, keys),
        ],
        access=ACCESS,
        background=background,
        on_stop=[close],
    )
