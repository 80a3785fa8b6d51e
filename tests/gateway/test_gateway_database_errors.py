"""The gateway's edge answers a lost database connection (a PostgreSQL restart under its own store)
as a retryable 503 ``DATABASE_UNAVAILABLE``, and a real bug still as a 500 that names nothing."""

from __future__ import annotations

import httpx
import psycopg
from fastapi import FastAPI
from sqlalchemy.exc import OperationalError

from gateway import problems


def _app() -> FastAPI:
    app = FastAPI()
    problems.install(app)

    @app.get("/lost")
    async def lost() -> None:
        raise OperationalError(
            "SELECT 1", {}, psycopg.OperationalError("server closed the connection unexpectedly")
        )

    @app.get("/bug")
    async def bug() -> None:
        raise RuntimeError("a bug with password=hunter2 in it")

    return app


async def test_a_lost_database_connection_is_a_503_and_a_bug_a_500():
    transport = httpx.ASGITransport(app=_app(), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
        lost = await client.get("/lost")
        bug = await client.get("/bug")
    assert lost.status_code == 503
    assert lost.headers["content-type"].startswith("application/problem+json")
    assert lost.json()["code"] == "DATABASE_UNAVAILABLE"
    assert bug.status_code == 500 and bug.json()["code"] == "INTERNAL"
    assert "hunter2" not in bug.text and "SELECT" not in lost.text
