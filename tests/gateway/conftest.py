"""Gateways with auth, rate-limit and webhook settings under the test's control, in front of the real
services, on real PostgreSQL (the gateway's own database) and Valkey."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest_asyncio
import uvicorn
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway import apikeys
from gateway.app import create_app
from gateway.clients import Upstreams
from gateway.config import GatewaySettings
from svckit.db import create_engine
from svckit.devstack.infra import free_port
from svckit.runtime import ServiceHandle
from svckit.testing import Infra
from tests.conftest import (  # the payment service verifies with the secret too
    WEBHOOK_SECRET,
    bounded_teardown,
)


@dataclass
class Gateway:
    url: str
    settings: GatewaySettings
    server: uvicorn.Server
    task: asyncio.Task

    def client(self, key: str | None = None, **kwargs: Any) -> httpx.AsyncClient:
        """An httpx client of this gateway (keyword arguments go to httpx.AsyncClient)."""
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.AsyncClient(base_url=self.url, timeout=10, headers=headers, **kwargs)

    async def stop(self) -> None:
        self.server.should_exit = True
        await self.task


StartGateway = Callable[..., Awaitable[Gateway]]


@pytest_asyncio.fixture(scope="session")
async def start_gateway(infra: Infra, services: dict[str, ServiceHandle]) -> AsyncIterator[StartGateway]:
    """Start a real gateway (uvicorn, free port) with settings overrides; all are stopped at the end."""
    started: list[Gateway] = []

    async def start(upstreams: Upstreams | None = None, **overrides: object) -> Gateway:
        port = free_port()
        # GatewaySettings fields by name, as Infra.settings takes them.
        values: dict[str, Any] = {
            "http_port": port,
            "payment_addr": services["payment"].address,
            "ledger_addr": services["ledger"].address,
            "wallet_addr": services["wallet"].address,
            "recon_addr": services["recon"].address,
            "stripe_webhook_secret": WEBHOOK_SECRET,
            "rate_limit_requests": 10_000,
            "auth_failure_limit": 10_000,  # tests that want the limit set their own
        }
        values.update(overrides)
        settings = infra.settings(GatewaySettings, **values)
        config = uvicorn.Config(
            create_app(settings, upstreams), host="127.0.0.1", port=port, loop="none", log_config=None,
            access_log=False, lifespan="on",
            timeout_graceful_shutdown=5,  # a connection still open at the end must not hold the session
        )  # fmt: skip
        server = uvicorn.Server(config)
        task = asyncio.create_task(server.serve())
        while not server.started:
            await asyncio.sleep(0.02)
            if task.done():
                task.result()
                raise RuntimeError("gateway did not start")
        gw = Gateway(f"http://127.0.0.1:{port}", settings, server, task)
        started.append(gw)
        return gw

    yield start
    for gw in started:
        await bounded_teardown(gw.stop(), f"stopping the gateway on {gw.url}")


@pytest_asyncio.fixture(scope="session")
async def gw(start_gateway: StartGateway) -> Gateway:
    """Production settings (webhook secret set), default body limit and cache TTL, a roomy rate limit."""
    return await start_gateway()


@pytest_asyncio.fixture(scope="session")
async def gw_nocache(start_gateway: StartGateway) -> Gateway:
    """Key cache disabled: a revocation takes effect on the next request."""
    return await start_gateway(api_key_cache_ttl_seconds=0)


@pytest_asyncio.fixture(scope="session")
async def gateway_engine(gw: Gateway) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(gw.settings.sqlalchemy_url(), pool_size=2)
    yield engine
    await engine.dispose()


@dataclass
class Keys:
    engine: AsyncEngine

    async def make(self, *scopes: str) -> tuple[apikeys.ApiKey, str]:
        async with self.engine.begin() as conn:
            return await apikeys.create(conn, f"test-{uuid.uuid4().hex[:6]}", scopes or ("payments",))

    async def revoke(self, key_id: str) -> None:
        async with self.engine.begin() as conn:
            assert await apikeys.revoke(conn, key_id) is not None


@pytest_asyncio.fixture(scope="session")
async def keys(gateway_engine: AsyncEngine) -> Keys:
    return Keys(gateway_engine)


@pytest_asyncio.fixture(scope="session")
async def client_key(keys: Keys) -> str:
    """A `payments` key shared by the tests that only need to be let in."""
    return (await keys.make("payments"))[1]


@pytest_asyncio.fixture(scope="session")
async def admin_key(keys: Keys) -> str:
    return (await keys.make("admin"))[1]


@pytest_asyncio.fixture(scope="session")
async def client(gw: Gateway, client_key: str) -> AsyncIterator[httpx.AsyncClient]:
    async with gw.client(client_key) as c:
        yield c
