"""The wallet's unit of work: the one owner of its connections, transactions, idempotency records and
the translation of database errors into the wallet's typed errors.

Services receive it and ask for the unit a use case needs (``read()``, ``transaction()``); none of
them, and no servicer, opens a connection or catches a driver error. Idempotency is svckit's
(``svckit.idempotency``), for single calls and batches alike:

- ``once`` runs a use case at most once per key; the use case's ``transaction()`` is then the key's
  transaction, so the movement and the stored answer commit together;
- ``batch`` runs a batch whose items carry their own keys in one transaction, in which
  ``probe_keys`` tries and reads the keys and ``answer`` gives the bytes each new item's record keeps.

Those bytes are in the transport's format: the transport gives the unit of work a
:class:`MovementAnswers` at composition, and the service never looks into them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Protocol, TypeVar

import psycopg.errors
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from svckit.errors import DomainError, FailedPrecondition
from svckit.idempotency import IdempotencyStore, ItemKey, StoredAnswer, probe_many
from svckit.uow import EngineUnitOfWork
from wallet_svc.domain import MovementResult


def balance_limit() -> FailedPrecondition:
    return FailedPrecondition(
        "BALANCE_LIMIT_EXCEEDED", "the resulting balance would exceed the largest storable amount"
    )


@contextlib.contextmanager
def database_errors_translated() -> Iterator[None]:
    """Database failures that mean something to a caller, as the wallet's typed errors."""
    try:
        yield
    except DBAPIError as exc:
        # A balance beyond int64 is refused as a precondition, not an internal error.
        if isinstance(exc.orig, psycopg.errors.NumericValueOutOfRange):
            raise balance_limit() from None
        raise


class MovementAnswers(Protocol):
    """The transport's encoding of a movement's stored answer (the single Credit/Debit response)."""

    def encode(self, scope: str, result: MovementResult) -> bytes: ...


T = TypeVar("T")


class WalletUnitOfWork(EngineUnitOfWork):
    """Connections, transactions and idempotency records of the wallet (see the module docstring);
    ``read``, ``transaction`` and ``once`` are svckit's (:class:`svckit.uow.EngineUnitOfWork`)."""

    def __init__(
        self,
        engine: AsyncEngine,
        idempotency: IdempotencyStore,
        answers: MovementAnswers | None = None,
        reads: AsyncEngine | None = None,
    ) -> None:
        super().__init__(engine, idempotency, reads)
        self._keys = idempotency  # the same store, typed as always present (``batch`` needs it)
        self._answers = answers

    def translate_errors(self) -> contextlib.AbstractContextManager[None]:
        return database_errors_translated()

    def bound_to(self, conn: AsyncConnection) -> WalletUnitOfWork:
        unit = WalletUnitOfWork(self._engine, self._keys, self._answers, self._reads)
        unit._bound = conn
        return unit

    async def batch(self, work: Callable[[WalletUnitOfWork], Awaitable[T]]) -> T:
        """Run a batch of keyed items in one transaction (``IdempotencyStore.run_many``)."""

        async def bound(conn: AsyncConnection) -> T:
            return await work(self.bound_to(conn))

        with database_errors_translated():
            return await self._keys.run_many(bound)

    async def probe_keys(self, keys: Sequence[ItemKey]) -> list[StoredAnswer | DomainError | None]:
        """Inside ``batch``: each key's stored answer, refusal, or None (free, now held)."""
        if self._bound is None:
            raise RuntimeError("probe_keys runs inside batch()")
        return await probe_many(self._bound, keys)

    def answer(self, key: ItemKey, result: MovementResult) -> bytes:
        """The bytes ``key``'s record keeps for ``result``."""
        if self._answers is None:
            raise RuntimeError("this unit of work was built without an answer format")
        return self._answers.encode(key.scope, result)
