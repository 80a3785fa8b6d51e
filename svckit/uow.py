"""The shared shape of a service's unit of work over a SQLAlchemy engine.

A service's unit of work (``ledger_svc/uow.py``, ``wallet_svc/uow.py``, ``recon_svc/uow.py``) is the one
owner of its connections and transactions. What they share lives here once:

- ``read()``: a connection for plain reads;
- ``listing_read()``: a connection for a read that decides no money (a listing), from the standby of
  ``*_DATABASE_READ_URL`` when the service was given one;
- ``transaction()``: one transaction, committed at the end or rolled back on any exception;
- ``once(...)``: a use case run at most once per idempotency key (``svckit.idempotency``), in which
  the use case's ``read()`` and ``transaction()`` are the key's transaction, so its effect and the
  stored answer commit together.

Each service says how its database errors read to a caller (``translate_errors``) and how to make
the copy of itself bound to the key's transaction (``bound_to``); its own kinds of unit (the ledger's
one-statement units, the wallet's batches) stay in its module.
"""

from __future__ import annotations

import abc
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractContextManager
from typing import Self, TypeVar

from google.protobuf.message import Message
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from svckit.idempotency import IdempotencyStore

R = TypeVar("R", bound=Message)


class EngineUnitOfWork(abc.ABC):
    """Reads, transactions and keyed use cases on one engine (see the module docstring)."""

    def __init__(
        self,
        engine: AsyncEngine,
        idempotency: IdempotencyStore | None = None,
        reads: AsyncEngine | None = None,
    ) -> None:
        self._engine = engine
        self._idempotency = idempotency
        self._reads = reads
        # The key's open transaction while ``once`` (or a service's batch) runs a use case.
        self._bound: AsyncConnection | None = None

    def translate_errors(self) -> AbstractContextManager[None]:
        """Database failures that mean something to a caller, as the service's typed errors."""
        return contextlib.nullcontext()

    @abc.abstractmethod
    def bound_to(self, conn: AsyncConnection) -> Self:
        """This unit of work with its reads and transactions on ``conn`` (the key's transaction)."""

    @contextlib.asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        if self._bound is not None:
            yield self._bound
            return
        with self.translate_errors():
            async with self._engine.connect() as conn:
                yield conn

    @contextlib.asynccontextmanager
    async def listing_read(self) -> AsyncIterator[AsyncConnection]:
        """A read that decides no money: on the read engine (a standby, which may lag) when there is
        one, else as :meth:`read`. Never inside a keyed use case: that one reads its own transaction."""
        if self._reads is None or self._bound is not None:
            async with self.read() as conn:
                yield conn
            return
        with self.translate_errors():
            async with self._reads.connect() as conn:
                yield conn

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        """One transaction, committed at the end or rolled back on any exception; inside ``once``,
        the key's transaction."""
        if self._bound is not None:
            yield self._bound
            return
        with self.translate_errors():
            async with self._engine.begin() as conn:
                yield conn

    async def once(
        self,
        scope: str,
        key: str,
        request: Message,
        response_type: type[R],
        work: Callable[[Self], Awaitable[R]],
    ) -> tuple[R, bool]:
        """Run ``work`` at most once per (scope, key), its transaction also keeping the answer;
        (answer, replayed)."""
        if self._idempotency is None:
            raise RuntimeError("this unit of work was built without an idempotency store")

        async def bound(conn: AsyncConnection) -> R:
            return await work(self.bound_to(conn))

        with self.translate_errors():
            return await self._idempotency.run(scope, key, request, response_type, bound)
