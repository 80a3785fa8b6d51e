"""The payment service's unit of work: the one owner of connections and transactions.

A use case asks the :class:`UnitsOfWork` handed to it for the kind of unit of work a step needs and
reaches the database only through it (``uow.repo``, ``uow.add_event``):

- :meth:`~UnitsOfWork.transaction` — BEGIN ... COMMIT on the engine, rolled back on any exception;
  rows it locks stay locked until it ends. The default.
- :meth:`~UnitsOfWork.statement` — one plain psycopg connection in autocommit mode, for the hot steps
  that are a single statement (a checkout stored whole, a conditional move with its history row and
  settlement event): each statement is its own transaction, with no BEGIN/COMMIT round trips and no
  SQLAlchemy in between. Only the repository's driver statements run on it.
- :meth:`~UnitsOfWork.reader` — the engine's pool in autocommit mode, for reads that need no snapshot
  across statements.
- :meth:`PgUnitsOfWork.joined` — a transaction someone else owns (the idempotency store's, the event
  consumer's): the unit of work adds its statements to it and neither commits nor rolls back.

Database errors that mean something to a use case are translated here, once (:data:`UNIQUE_TAKEN`):
a taken checkout or order id becomes an :class:`IdTaken`, never a driver exception.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from types import TracebackType
from typing import Any, Protocol

import psycopg
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from payment_svc.repository import PaymentRepository
from svckit.db import DriverPool, autocommit
from svckit.events import outbox


class IdTaken(Exception):
    """A client-chosen id is stored already (the statement stored nothing)."""

    what = "id"


class CheckoutIdTaken(IdTaken):
    what = "checkout_id"


class PaymentOrderIdTaken(IdTaken):
    what = "payment_order_id"


UNIQUE_TAKEN: dict[str, type[IdTaken]] = {
    "payment_events_pkey": CheckoutIdTaken,
    "payment_orders_pkey": PaymentOrderIdTaken,
}
"""The uniqueness the database enforces that a use case answers for, by constraint name."""


def translated(exc: BaseException) -> IdTaken | None:
    """The domain error a database error stands for, or None when it is not one of ours."""
    if isinstance(exc, IntegrityError):  # raised through SQLAlchemy: the driver's error is inside
        exc = exc.orig if exc.orig is not None else exc
    if isinstance(exc, psycopg.errors.UniqueViolation):
        kind = UNIQUE_TAKEN.get(exc.diag.constraint_name or "")
        if kind is not None:
            return kind(exc.diag.constraint_name)
    return None


class UnitOfWork:
    """One unit of work: its repository and its outbox."""

    def __init__(self, repo: PaymentRepository) -> None:
        self.repo = repo

    async def add_event(self, *, stream: str, aggregate_id: str, type: str, payload: dict[str, Any]) -> None:
        """Write an event to the outbox with this unit of work's other changes (published only once
        they commit)."""
        await outbox.add(self.repo.conn, stream=stream, aggregate_id=aggregate_id, type=type, payload=payload)


class UnitsOfWork(Protocol):
    """Where use cases get their units of work (see the module's docstring for the kinds)."""

    def transaction(self) -> AbstractAsyncContextManager[UnitOfWork]: ...

    def statement(self) -> AbstractAsyncContextManager[UnitOfWork]: ...

    def reader(self) -> AbstractAsyncContextManager[UnitOfWork]: ...


def _on(conn: AsyncConnection) -> UnitOfWork:
    return UnitOfWork(PaymentRepository(conn))


class _Statement:
    """A one-statement unit of work: a pool connection in autocommit mode for as long as it lasts. A
    class rather than a generator-based context manager: the hot path opens a few per order."""

    __slots__ = ("_connection",)

    def __init__(self, pool: DriverPool) -> None:
        self._connection = pool.connection()

    async def __aenter__(self) -> UnitOfWork:
        return UnitOfWork(PaymentRepository(None, await self._connection.__aenter__()))

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._connection.__aexit__(kind, exc, tb)  # the connection goes back to the pool
        if exc is not None and (taken := translated(exc)) is not None:
            raise taken from exc


class PgUnitsOfWork:
    """Units of work on PostgreSQL: the engine for transactions and reads, a driver pool for statements."""

    def __init__(self, engine: AsyncEngine, driver: DriverPool | None = None) -> None:
        """``driver``: the pool of the one-statement units of work (owned: closed with these); without
        one, :meth:`statement` is refused (a user that needs none, such as settlement)."""
        self._engine = engine
        self._reader = autocommit(engine)
        self._driver = driver

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[UnitOfWork]:
        try:
            async with self._engine.begin() as conn:
                yield _on(conn)
        except (psycopg.errors.UniqueViolation, IntegrityError) as exc:
            taken = translated(exc)
            if taken is None:
                raise
            raise taken from exc

    def statement(self) -> AbstractAsyncContextManager[UnitOfWork]:
        if self._driver is None:
            raise RuntimeError("these units of work have no driver pool for one-statement units of work")
        return _Statement(self._driver)

    @asynccontextmanager
    async def reader(self) -> AsyncIterator[UnitOfWork]:
        async with self._reader.connect() as conn:
            yield _on(conn)

    @staticmethod
    def joined(conn: AsyncConnection) -> UnitOfWork:
        """A unit of work inside a transaction its caller owns (and commits or rolls back)."""
        return _on(conn)

    async def close(self) -> None:
        if self._driver is not None:
            await self._driver.close()
