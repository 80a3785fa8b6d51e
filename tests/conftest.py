"""Session-wide real infrastructure: PostgreSQL and Redis (embedded unless DATABASE_URL/REDIS_URL are
set), fresh databases for this session, and the four gRPC services started in-process on free ports."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import grpc
import pytest
import pytest_asyncio

from ledger_svc import bootstrap as ledger_bootstrap
from ledger_svc.config import LedgerSettings
from payment_svc import bootstrap as payment_bootstrap
from payment_svc.config import PaymentSettings
from recon_svc import bootstrap as recon_bootstrap
from recon_svc.config import ReconSettings
from svckit.logging import configure_logging
from svckit.runtime import ServiceHandle, start_service
from svckit.testing import Infra
from wallet_svc import bootstrap as wallet_bootstrap
from wallet_svc.config import WalletSettings

SERVICES = {
    "payment": (PaymentSettings, payment_bootstrap),
    "ledger": (LedgerSettings, ledger_bootstrap),
    "wallet": (WalletSettings, wallet_bootstrap),
    "recon": (ReconSettings, recon_bootstrap),
}


@pytest.fixture(scope="session")
def infra() -> Iterator[Infra]:
    configure_logging("tests", "WARNING", "console")
    started = Infra.start()
    yield started
    started.stop()


@pytest_asyncio.fixture(scope="session")
async def services(infra: Infra) -> AsyncIterator[dict[str, ServiceHandle]]:
    """All four services, running for the whole session."""
    handles: dict[str, ServiceHandle] = {}
    for name, (settings_cls, boot) in SERVICES.items():
        handles[name] = await start_service(infra.settings(settings_cls), boot.MIGRATIONS, boot.build)
    yield handles
    for handle in handles.values():
        await handle.stop(0.2)


async def _channel(handle: ServiceHandle) -> grpc.aio.Channel:
    return grpc.aio.insecure_channel(handle.address)


@pytest_asyncio.fixture(scope="session")
async def channels(services: dict[str, ServiceHandle]) -> AsyncIterator[dict[str, grpc.aio.Channel]]:
    chans = {name: grpc.aio.insecure_channel(h.address) for name, h in services.items()}
    yield chans
    for chan in chans.values():
        await chan.close()
