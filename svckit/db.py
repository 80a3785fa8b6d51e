"""PostgreSQL access shared by the services: engines, database creation and Alembic migrations.

Services use SQLAlchemy Core on an ``AsyncConnection``: a unit of work is ``async with engine.begin()``,
which commits once at the end or rolls back on any exception. Repositories take the connection.

Hot paths whose unit of work is a single statement may use a :class:`DriverPool` instead: plain
psycopg connections in autocommit mode, with no SQLAlchemy in between (a checkout plus a small
statement costs well under half the client CPU it costs through the engine).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TypeVar

import psycopg
from alembic import command
from alembic.config import Config
from psycopg import sql
from psycopg_pool import AsyncConnectionPool, PoolTimeout
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from svckit.logging import get_logger

log = get_logger(__name__)

T = TypeVar("T")


def one_row(row: T | None, what: str) -> T:
    """The row of a statement expected to yield one (an aggregate, a probe selected from one row, a
    record just found to exist): drivers type the fetch as optional, so a missing row is reported
    here plainly instead of failing later on ``None``."""
    if row is None:
        raise RuntimeError(f"{what}: the statement returned no row")
    return row


# Connection exceptions (08xxx) and the server going away under a connection: admin_shutdown (a
# restart or pg_terminate_backend), crash_shutdown, cannot_connect_now (starting up or recovering).
_LOST_SQLSTATES = ("08", "57P01", "57P02", "57P03")


def database_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` says the database is unreachable or dropped the connection (a restart, a
    failover), so the same call may succeed when tried again, rather than failing on its merits.

    Engines keep pooled connections without a pre-ping (a round trip per checkout), so after a restart
    the first statement on a pooled connection meets this; SQLAlchemy then invalidates the rest of
    its pool, and :class:`DriverPool` checks its own. The edges answer it as UNAVAILABLE
    ``DATABASE_UNAVAILABLE`` (gRPC) or 503 (the gateway), which a client retries."""
    if isinstance(exc, PoolTimeout):
        return True
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return True
        exc = exc.orig if exc.orig is not None else exc
    if isinstance(exc, psycopg.OperationalError):
        # No SQLSTATE: the client library lost the connection (closed socket, refused connect).
        return exc.sqlstate is None or exc.sqlstate.startswith(_LOST_SQLSTATES)
    return False


def database_error_text(exc: BaseException) -> str:
    """What the driver said, for a log line: not SQLAlchemy's rendering, which quotes the statement
    and its parameters (values that may be a customer's)."""
    orig = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    return f"{type(orig).__name__}: {str(orig).strip()[:200]}"


def create_engine(url: str, pool_size: int = 10) -> AsyncEngine:
    return create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=False,
        pool_recycle=1800,
    )


class DriverPool:
    """Plain psycopg connections in autocommit mode: each statement is its own transaction.

    Opened on first use (construction needs no running loop, like an engine). psycopg prepares a
    statement on a connection after a few executions, so hot statements are also planned once.
    """

    def __init__(self, url: str, max_size: int, name: str, session_locks: bool = False) -> None:
        """``session_locks``: the pool's users take session-level advisory locks (idempotency claims).
        Every returned connection then drops whatever session locks it still holds before it is
        reused, and a connection where that fails is discarded, so no lock outlives its user. Off
        for pools of plain statements, which would pay a round trip per checkout for nothing."""
        self._pool = AsyncConnectionPool(
            _libpq_url(url),
            # A few kept open: the pool grows one connection at a time, so a burst after an idle
            # spell (it shrinks back after ten idle minutes) would otherwise queue behind connects.
            min_size=min(4, max_size),
            max_size=max_size,
            kwargs={"autocommit": True},
            name=name,
            open=False,
            reset=_release_session_locks if session_locks else None,
        )
        self._opened = False
        self._opening = asyncio.Lock()

    async def _open(self) -> None:
        async with self._opening:
            if not self._opened:
                await self._pool.open(wait=True, timeout=30)
                self._opened = True

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[psycopg.AsyncConnection]:
        if not self._opened:
            await self._open()
        try:
            async with self._pool.connection() as conn:
                yield conn
        except psycopg.OperationalError as exc:
            if database_unavailable(exc):
                # The broken connection is discarded on return; the idle ones likely went stale with
                # it (a restart drops them all), so check them now rather than fail one call each.
                await self._pool.check()
            raise

    async def close(self) -> None:
        if self._opened:
            await self._pool.close()
            self._opened = False


async def _release_session_locks(conn: psycopg.AsyncConnection) -> None:
    # psycopg_pool closes and replaces the connection if this raises.
    await conn.execute("SELECT pg_advisory_unlock_all()")


async def driver_connection(conn: AsyncConnection) -> psycopg.AsyncConnection:
    """The psycopg connection under an SQLAlchemy one: same session, same transaction."""
    raw = await conn.get_raw_connection()
    driver = raw.driver_connection
    if driver is None:  # only a connection that was closed or invalidated has none
        raise RuntimeError("the SQLAlchemy connection has no open psycopg connection under it")
    return driver


def autocommit(engine: AsyncEngine) -> AsyncEngine:
    """The same pool, with each statement its own transaction: no BEGIN/ROLLBACK round trips.

    For reads that need no snapshot across statements, and for session-level advisory locks.
    """
    return engine.execution_options(isolation_level="AUTOCOMMIT")


def _libpq_url(url: str, database: str | None = None) -> str:
    u = make_url(url).set(drivername="postgresql")
    if database is not None:
        u = u.set(database=database)
    return u.render_as_string(hide_password=False)


def ensure_database(url: str) -> bool:
    """Create the database named in ``url`` if the server lacks it. Returns True when it was created."""
    name = make_url(url).database
    if not name:
        # Not the URL itself: it carries the password.
        raise ValueError("no database name in the URL")
    with psycopg.connect(_libpq_url(url, "postgres"), autocommit=True, connect_timeout=10) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if exists:
            return False
        try:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        except (psycopg.errors.DuplicateDatabase, psycopg.errors.UniqueViolation):
            # Another replica created it first. Two CREATE DATABASE racing each other can also meet
            # on the catalog's unique index, which PostgreSQL reports as a plain unique violation.
            return False
        log.info("database created", database=name)
        return True


def drop_database(url: str) -> None:
    name = make_url(url).database
    if not name:
        raise ValueError("no database name in the URL")
    with psycopg.connect(_libpq_url(url, "postgres"), autocommit=True, connect_timeout=10) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def alembic_config(migrations_dir: Path, url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir))
    # Migrations run synchronously over psycopg 3; '%' must be escaped for ConfigParser.
    sync_url = make_url(url).set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    cfg.set_main_option("sqlalchemy.url", sync_url.replace("%", "%%"))
    return cfg


def migrate(migrations_dir: Path, url: str, create: bool = True) -> None:
    """Create the database if needed and upgrade it to the newest revision."""
    if create:
        ensure_database(url)
    command.upgrade(alembic_config(migrations_dir, url), "head")


async def migrate_async(migrations_dir: Path, url: str, create: bool = True) -> None:
    await asyncio.to_thread(migrate, migrations_dir, url, create)
