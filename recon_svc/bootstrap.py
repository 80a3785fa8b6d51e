"""Composition root of recon_svc."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine

from recon_svc.config import ReconSettings
from recon_svc.service import ReconService
from recon_svc.servicer import ReconServicer
from svckit.gen.recon.v1 import recon_service_pb2, recon_service_pb2_grpc
from svckit.grpc_server import Registration
from svckit.idempotency import IdempotencyStore
from svckit.runtime import ServiceParts

MIGRATIONS = Path(__file__).parent / "migrations"
SERVICE_NAME = recon_service_pb2.DESCRIPTOR.services_by_name["ReconService"].full_name


def build(settings: ReconSettings, engine: AsyncEngine, idempotency: IdempotencyStore) -> ServiceParts:
    servicer = ReconServicer(ReconService(), engine, idempotency)
    return ServiceParts(
        registrations=[
            Registration(recon_service_pb2_grpc.add_ReconServiceServicer_to_server, servicer, SERVICE_NAME)
        ]
    )
