"""The gateway's composition root: settings, database, Redis, upstream clients, middleware, routes,
error mapping."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline
from prometheus_client import make_asgi_app
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from gateway import apikeys, buyer_pages, openapi, problems
from gateway.admission import Admission
from gateway.apikeys import KeyAuthenticator
from gateway.clients import Upstreams
from gateway.config import GatewaySettings
from gateway.console import audit as console_audit
from gateway.console import books as console_books
from gateway.console import events as console_events
from gateway.console import overview as console_overview
from gateway.console import payments as console_payments
from gateway.console import payouts as console_payouts
from gateway.console import recon as console_recon
from gateway.console import sellers as console_sellers
from gateway.console import signin as console_signin
from gateway.metrics import HttpMetricsMiddleware
from gateway.middleware import RequestContextMiddleware
from gateway.models import MIGRATIONS
from gateway.ratelimit import AUTH_FAILURE_KEY_PREFIX, RateLimiter
from gateway.routes import admin, health, ledger, payments, payouts, reconciliation, sellers, webhooks
from svckit.db import create_engine, migrate_async
from svckit.logging import get_logger
from svckit.redisclient import redis_client

log = get_logger(__name__)

DEV_KEY_NAME = "development"

DESCRIPTION = """Public REST API of Marketplace Payments.

Authenticate with an API key: `Authorization: Bearer mpk_...` (scope `payments` for pay-in routes,
`admin` for operator routes and sellers' wallets). Each key has a rate budget; a 429 carries `Retry-After`.
Amounts are decimal strings in the currency's major unit (`"3.15"` USD), never JSON numbers.
Errors are RFC 9457 `application/problem+json` with a stable `code`.
POST requests take an `Idempotency-Key` header (at most 255 characters); a replay answers with
`Idempotent-Replayed: true`.
"""


class _Metrics:
    """prometheus-client's ASGI app under ``/metrics`` exactly (a Mount would redirect to ``/metrics/``)."""

    def __init__(self) -> None:
        self._app = make_asgi_app()

    async def __call__(self, scope, receive, send) -> None:
        await self._app(scope, receive, send)


def create_app(settings: GatewaySettings, upstreams: Upstreams | None = None) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        url = settings.sqlalchemy_url()
        if settings.migrate_on_start:
            await migrate_async(MIGRATIONS, url)
        engine = create_engine(url, pool_size=settings.db_pool_size)
        if settings.dev_api_key is not None:
            async with engine.begin() as conn:
                key = await apikeys.upsert(
                    conn, settings.dev_api_key.get_secret_value(), DEV_KEY_NAME, apikeys.SCOPES
                )
            log.info("development API key ready", key_id=key.id, key_prefix=key.key_prefix)
        # No retries and a short timeout: the limiter must answer fast or step aside (see ratelimit.py).
        redis = redis_client(
            settings.redis_url,
            settings.redis_cluster,
            socket_timeout=settings.rate_limit_redis_timeout_seconds,
            socket_connect_timeout=settings.rate_limit_redis_timeout_seconds,
            retry=Retry(NoBackoff(), 0),
        )
        app.state.engine = engine
        app.state.authenticator = KeyAuthenticator(
            engine, settings.api_key_cache_ttl_seconds, settings.api_key_cache_max_entries
        )
        app.state.rate_limiter = RateLimiter(
            redis,
            settings.rate_limit_requests,
            settings.rate_limit_window_seconds,
            settings.rate_limit_fail_open,
        )
        app.state.auth_failure_limiter = RateLimiter(
            redis,
            settings.auth_failure_limit,
            settings.auth_failure_window_seconds,
            settings.rate_limit_fail_open,
            key_prefix=AUTH_FAILURE_KEY_PREFIX,
        )
        app.state.upstreams = upstreams or Upstreams.connect(settings)
        try:
            yield
        finally:
            if upstreams is None:
                await app.state.upstreams.close()
            await redis.aclose()
            await engine.dispose()

    # The same app, with /docs and /redoc served from the pinned package's own copies of Swagger UI
    # and ReDoc: a machine without internet (or a locked-down network) still gets working docs.
    app = FastAPIOffline(
        title="Marketplace Payments",
        version="1.0.0",
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.admission = Admission(settings.max_inflight_writes, settings.admission_wait_seconds)
    app.state.status_links = buyer_pages.StatusLinks(settings)
    problems.install(app)
    openapi.install(app)
    app.include_router(health.router)
    # Before the payments routes: /v1/payments/return is a page, not GET /v1/payments/{payment_order_id}.
    app.include_router(buyer_pages.router)
    app.include_router(console_signin.router)
    app.include_router(console_payments.router)
    app.include_router(console_audit.router)
    app.include_router(console_sellers.router)
    app.include_router(console_payouts.router)
    app.include_router(console_books.router)
    app.include_router(console_recon.router)
    app.include_router(console_events.router)
    app.include_router(console_overview.router)
    app.include_router(payments.router)
    app.include_router(admin.router)
    app.include_router(payouts.router)
    app.include_router(reconciliation.router)
    app.include_router(ledger.router)
    app.include_router(sellers.router)
    app.include_router(webhooks.router)
    app.add_route("/metrics", _Metrics(), include_in_schema=False)  # type: ignore[arg-type]  # Route serves a non-function as an ASGI app
    app.add_middleware(
        RequestContextMiddleware,
        max_body_bytes=settings.max_body_bytes,
        # A settlement CSV upload is larger than any JSON body; only its route gets the larger limit.
        body_limits={reconciliation.RUNS_PATH: settings.settlement_upload_max_bytes},
    )
    app.add_middleware(HttpMetricsMiddleware)
    return app
