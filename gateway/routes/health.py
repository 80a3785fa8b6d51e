"""Liveness and readiness."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import psycopg
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from grpc_health.v1 import health_pb2, health_pb2_grpc

from svckit.redisclient import redis_client

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="Liveness: the gateway process is up")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


async def _timed(coro) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        detail = await coro
        return {"ok": True, "latency_ms": round((time.perf_counter() - started) * 1000, 2), **(detail or {})}
    except Exception as exc:  # readiness reports every failure instead of raising
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}".strip()[:300]}


@router.get(
    "/readyz",
    summary="Readiness: every dependency answers",
    responses={503: {"description": "at least one dependency is not ready"}},
)
async def readyz(request: Request) -> JSONResponse:
    state = request.app.state
    timeout = state.settings.readiness_timeout_seconds

    async def grpc_check(name: str) -> dict[str, str]:
        stub = health_pb2_grpc.HealthStub(state.upstreams.channels[name])
        reply = await stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=timeout)  # type: ignore[attr-defined]  # the stub declares no methods
        status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
        if reply.status != health_pb2.HealthCheckResponse.SERVING:
            raise RuntimeError(status)
        return {"status": status}

    async def postgres_check() -> None:
        conn = await psycopg.AsyncConnection.connect(
            state.settings.database_url, connect_timeout=max(1, int(timeout)), autocommit=True
        )
        async with conn:
            await conn.execute("SELECT 1")

    async def redis_check() -> None:
        client = redis_client(
            state.settings.redis_url,
            state.settings.redis_cluster,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
        )
        try:
            await client.ping()
        finally:
            await client.aclose()

    names = ["payment", "ledger", "wallet", "recon"]
    checks = [grpc_check(n) for n in names] + [postgres_check(), redis_check()]
    results = await asyncio.gather(
        *(asyncio.wait_for(_timed(c), timeout + 0.5) for c in checks), return_exceptions=True
    )
    report = {}
    for name, result in zip([*names, "postgres", "redis"], results, strict=True):
        report[name] = result if isinstance(result, dict) else {"ok": False, "error": "timed out"}
    ready = all(r["ok"] for r in report.values())
    return JSONResponse(
        {"status": "ready" if ready else "not_ready", "checks": report}, status_code=200 if ready else 503
    )
