"""Fixtures of the wallet tests: a stub on the session's real wallet service and its engine."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from svckit.gen.wallet.v1 import wallet_service_pb2_grpc as pb_grpc


@pytest.fixture
def stub(channels) -> pb_grpc.WalletServiceStub:
    return pb_grpc.WalletServiceStub(channels["wallet"])


@pytest.fixture
def engine(services) -> AsyncEngine:
    return services["wallet"].engine
