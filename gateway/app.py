"""The gateway's composition root: settings, upstream clients, middleware, routes, error mapping."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from gateway import problems
from gateway.clients import Upstreams
from gateway.config import GatewaySettings
from gateway.middleware import RequestContextMiddleware
from gateway.routes import health, ledger

DESCRIPTION = """Public REST API of Marketplace Payments.

Amounts are decimal strings in the currency's major unit (`"3.15"` USD), never JSON numbers.
Errors are RFC 9457 `application/problem+json` with a stable `code`.
POST requests take an `Idempotency-Key` header (at most 255 characters); a replay answers with
`Idempotent-Replayed: true`.
"""


def create_app(settings: GatewaySettings, upstreams: Upstreams | None = None) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.upstreams = upstreams or Upstreams.connect(settings)
        yield
        if upstreams is None:
            await app.state.upstreams.close()

    app = FastAPI(
        title="Marketplace Payments",
        version="1.0.0",
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.settings = settings
    problems.install(app)
    app.include_router(health.router)
    app.include_router(ledger.router)
    app.add_middleware(RequestContextMiddleware, max_body_bytes=settings.max_body_bytes)
    return app
