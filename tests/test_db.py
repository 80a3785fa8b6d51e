"""svckit.db helpers against the session's PostgreSQL: rows that must exist, and database names."""

from __future__ import annotations

import psycopg
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import URL, make_url

from ledger_svc.config import LedgerSettings
from svckit.db import DriverPool, create_engine, drop_database, ensure_database, one_row
from svckit.devstack.infra import free_port


def _libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def test_one_row_gives_the_row_of_an_aggregate(infra):
    with psycopg.connect(_libpq(infra.database_url)) as conn:
        count, total = one_row(
            conn.execute("SELECT count(*), coalesce(sum(1), 0) FROM pg_database").fetchone(), "x"
        )
    assert count >= 1
    assert total == count


def test_one_row_names_the_statement_that_returned_none(infra):
    with psycopg.connect(_libpq(infra.database_url)) as conn:
        cursor = conn.execute("SELECT 1 WHERE false")
        with pytest.raises(RuntimeError, match="claim probe: the statement returned no row"):
            one_row(cursor.fetchone(), "claim probe")


@pytest.mark.parametrize("operation", [drop_database, ensure_database])
def test_a_url_without_a_database_name_is_refused_without_quoting_its_password(infra, operation):
    server = make_url(infra.database_url)
    url = URL.create(
        "postgresql", server.username, "hunter2-not-in-errors", server.host, server.port, database=None
    )
    with pytest.raises(ValueError, match="no database name") as caught:
        operation(url.render_as_string(hide_password=False))
    assert "hunter2" not in str(caught.value)


async def test_a_two_host_url_reaches_the_server_that_is_up_through_every_kind_of_client(infra):
    """DATABASE_HOSTS lists a primary and its standby; after a fail-over the first one is gone. The
    engine (SQLAlchemy), the plain pools (psycopg_pool) and the database helpers all follow the list."""
    server = make_url(infra.database_url)
    gone = free_port()  # nothing listens there: a primary that was lost
    settings = LedgerSettings(
        database_url=infra.database_url,
        database_hosts=f"127.0.0.1:{gone},{server.host}:{server.port}",
        database_name="postgres",  # no database made for this: it only connects
    )
    url = settings.sqlalchemy_url()
    assert ensure_database(url) is False  # found it on the live server
    engine = create_engine(url, pool_size=1)
    try:
        async with engine.connect() as conn:
            port = (await conn.execute(sa.text("SELECT inet_server_port()"))).scalar_one()
        assert port == server.port
    finally:
        await engine.dispose()
    pool = DriverPool(url, max_size=1, name="two-hosts")
    try:
        async with pool.connection() as conn:
            row = await (await conn.execute("SELECT current_database(), pg_is_in_recovery()")).fetchone()
        assert row == ("postgres", False)
    finally:
        await pool.close()
