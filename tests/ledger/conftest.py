"""Fixtures of the ledger tests: stubs on the shared service, and dedicated ledger servers (own
database, own process) for tests that tamper with data or load the service."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import psycopg
import pytest
import pytest_asyncio

from ledger_svc import bootstrap as ledger_bootstrap
from ledger_svc.config import LedgerSettings
from svckit.db import drop_database
from svckit.gen.ledger.v1 import ledger_service_pb2_grpc as pb_grpc
from svckit.runtime import ServiceHandle, start_service
from svckit.testing import Infra
from tests.ledger.ledger_helpers import LedgerProcess, start_ledger_process


@dataclass
class IsolatedLedger:
    """A ledger service on its own fresh database (in-process, on the session loop)."""

    handle: ServiceHandle
    stub: pb_grpc.LedgerServiceStub
    """Calls as ``payment``: postings and reads."""
    admin: pb_grpc.LedgerServiceStub
    """Calls as ``operator``: opening and closing accounts."""
    database_url: str

    def connect(self) -> psycopg.Connection:
        """A plain superuser connection to the service's database, autocommit."""
        return psycopg.connect(self.database_url, autocommit=True)


@pytest_asyncio.fixture
async def isolated_ledger(infra: Infra) -> AsyncIterator[IsolatedLedger]:
    """A fresh, empty ledger for one test: tampering with it cannot disturb other tests."""
    name = f"{infra.prefix}_ledger_{uuid.uuid4().hex[:8]}"
    handle = await start_service(
        infra.settings(LedgerSettings, database_name=name),
        ledger_bootstrap.MIGRATIONS,
        ledger_bootstrap.build,
    )
    async with (
        infra.channel(handle.address) as channel,
        infra.channel(handle.address, "operator") as admin_channel,
    ):
        yield IsolatedLedger(
            handle,
            pb_grpc.LedgerServiceStub(channel),
            pb_grpc.LedgerServiceStub(admin_channel),
            infra.database_url_for(name),
        )
    await handle.stop(0.1)
    drop_database(infra.database_url_for(name))


@pytest.fixture
def ledger_process(infra: Infra) -> Iterator[LedgerProcess]:
    """A fresh ledger in its own process, for clients that need a server not on the test's event loop."""
    started = start_ledger_process(infra, pool_size=32)
    yield started
    started.stop()
    drop_database(started.database_url)


@pytest.fixture
def stub(channels) -> pb_grpc.LedgerServiceStub:
    """The session's shared ledger service, as ``payment`` (postings and reads)."""
    return pb_grpc.LedgerServiceStub(channels["ledger"])


@pytest.fixture
def admin(operator_channels) -> pb_grpc.LedgerServiceStub:
    """The session's shared ledger service, as ``operator`` (opening and closing accounts)."""
    return pb_grpc.LedgerServiceStub(operator_channels["ledger"])
