"""Composition root of payment_svc."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine

from payment_svc.config import PaymentSettings
from payment_svc.service import PaymentService
from payment_svc.servicer import PaymentServicer
from svckit.gen.payments.v1 import payment_service_pb2, payment_service_pb2_grpc
from svckit.grpc_server import Registration
from svckit.idempotency import IdempotencyStore
from svckit.runtime import ServiceParts

MIGRATIONS = Path(__file__).parent / "migrations"
SERVICE_NAME = payment_service_pb2.DESCRIPTOR.services_by_name["PaymentService"].full_name


def build(settings: PaymentSettings, engine: AsyncEngine, idempotency: IdempotencyStore) -> ServiceParts:
    servicer = PaymentServicer(PaymentService(), engine, idempotency)
    return ServiceParts(
        registrations=[
            Registration(
                payment_service_pb2_grpc.add_PaymentServiceServicer_to_server, servicer, SERVICE_NAME
            )
        ]
    )
