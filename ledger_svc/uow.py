"""The ledger's unit of work: the one owner of its connections, transactions, idempotency records and
the translation of database errors into the ledger's typed errors.

Services receive it and ask for the kind of unit a use case needs; none of them, and no servicer,
opens a connection, sets an isolation level or catches a driver error:

- ``read()``: a connection for plain reads;
- ``snapshot()``: one consistent read-only snapshot (verification);
- ``transaction()``: one transaction, committed at the end or rolled back on any exception;
- ``statement()`` / ``batch_statement()``: a single statement that is its own transaction, on an
  autocommit connection (through SQLAlchemy, or a plain psycopg one for the hot batch statement).
  The ledger's posting functions decide, write and keep the idempotency record inside that one
  statement, so no BEGIN/COMMIT round trips are spent on them: a deliberate kind of unit of work.

``once`` runs a use case at most once per idempotency key (``svckit.idempotency``): the use case's
``transaction()`` is then the key's transaction, so its effect and the stored answer commit together.
``claim`` holds a key across several units (the batch call's key).

The answers an idempotency record stores are in the transport's format: the transport gives the
unit of work an :class:`AnswerFormat` at composition (``ledger_svc/wire.py``), and the posting
functions store ``record(...)``'s template followed by what the database assigns. Services pass
records and stored answers on without looking into them.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Protocol

import psycopg
import sqlalchemy as sa
from google.protobuf.message import Message
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ledger_svc.domain import Posting
from svckit.db import DriverPool, driver_connection
from svckit.errors import FailedPrecondition, Unavailable
from svckit.idempotency import Claim, IdempotencyStore, StoredAnswer
from svckit.uow import EngineUnitOfWork

# Deadlock (only possible when CloseAccount races postings, or batches create the same new accounts)
# and serialization failures roll everything back, so the same request may simply be retried.
_TRANSIENT_SQLSTATES = frozenset({"40P01", "40001"})


@contextlib.contextmanager
def database_errors_translated() -> Iterator[None]:
    """Database failures that mean something to a caller, as the ledger's typed errors."""
    try:
        yield
    # Statements run through SQLAlchemy (wrapped driver errors) or on plain psycopg connections.
    except (DBAPIError, psycopg.Error) as exc:
        state = getattr(exc.orig if isinstance(exc, DBAPIError) else exc, "sqlstate", None)
        if state in _TRANSIENT_SQLSTATES:
            raise Unavailable(
                "TRANSIENT_CONFLICT", "the posting collided with a concurrent one; retry with the same key"
            ) from exc
        if state == "22003":  # numeric_value_out_of_range: a running total would pass int64
            raise FailedPrecondition(
                "BALANCE_OVERFLOW", "an account total would exceed the largest storable amount"
            ) from exc
        raise


@dataclass(frozen=True)
class RecordKey:
    """The idempotency key of one posting, handled by the posting functions with svckit.idempotency's
    protocol and table: scope, key, advisory lock id and request fingerprint, plus the request as
    the transport decoded it (``request``: its deterministic wire form, which the fingerprint hashes;
    ``decoded``: the posting made from it), from which the answer format may build the template."""

    scope: str
    key: str
    lock_id: int
    fingerprint: bytes
    request: bytes
    decoded: Posting


@dataclass(frozen=True)
class Record:
    """What a posting function writes under a key: the key, and the stored answer's bytes up to the
    id and post time the database assigns and appends (``ledger_post_response``)."""

    key: RecordKey
    template: bytes


class AnswerFormat(Protocol):
    """The transport's encoding of a posting's stored answer (``ledger_svc.wire.PostingAnswers``)."""

    def template(self, posting: Posting, key: RecordKey) -> bytes:
        """The answer for the validated ``posting`` less the id and post time."""
        ...


class LedgerUnitOfWork(EngineUnitOfWork):
    """Connections, transactions and idempotency records of the ledger (see the module docstring);
    ``read``, ``transaction`` and ``once`` are svckit's (:class:`svckit.uow.EngineUnitOfWork`)."""

    def __init__(
        self,
        engine: AsyncEngine,
        idempotency: IdempotencyStore,
        answers: AnswerFormat | None = None,
        *,
        statements: DriverPool | None = None,
    ) -> None:
        super().__init__(engine, idempotency)
        self._keys = idempotency  # the same store, typed as always present (``claim`` needs it)
        self._answers = answers
        # Plain autocommit connections for batch statements (the coalescer's pool); without one, a
        # batch statement runs on the psycopg connection under an autocommit engine connection.
        self._statements = statements

    def translate_errors(self) -> contextlib.AbstractContextManager[None]:
        return database_errors_translated()

    def with_statements(self, pool: DriverPool) -> LedgerUnitOfWork:
        """The same unit of work, its batch statements on ``pool`` (a coalescer's own connections)."""
        return LedgerUnitOfWork(self._engine, self._keys, self._answers, statements=pool)

    def bound_to(self, conn: AsyncConnection) -> LedgerUnitOfWork:
        unit = LedgerUnitOfWork(self._engine, self._keys, self._answers, statements=self._statements)
        unit._bound = conn
        return unit

    # --- units ----------------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def snapshot(self) -> AsyncIterator[AsyncConnection]:
        """A read-only connection on one REPEATABLE READ snapshot, taken at once."""
        with database_errors_translated():
            async with self._engine.connect() as conn:
                await conn.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
                await conn.execute(sa.text("SELECT 1"))
                yield conn

    @contextlib.asynccontextmanager
    async def statement(self) -> AsyncIterator[AsyncConnection]:
        """An autocommit connection: each statement on it is one transaction."""
        with database_errors_translated():
            async with self._engine.connect() as conn:
                await conn.execution_options(isolation_level="AUTOCOMMIT")
                yield conn

    @contextlib.asynccontextmanager
    async def batch_statement(self) -> AsyncIterator[psycopg.AsyncConnection]:
        """A plain psycopg connection in autocommit mode, for the one-statement batch."""
        # A connection whose statement failed or was cancelled goes back to its pool, which discards
        # it unless it is idle again.
        with database_errors_translated():
            if self._statements is not None:
                async with self._statements.connection() as plain:
                    yield plain
                return
            async with self._engine.connect() as conn:
                await conn.execution_options(isolation_level="AUTOCOMMIT")
                yield await driver_connection(conn)

    # --- idempotency records --------------------------------------------------------------------

    def record(self, posting: Posting, key: RecordKey) -> Record:
        """The record a posting function writes under ``key`` for the validated ``posting``."""
        if self._answers is None:
            raise RuntimeError("this unit of work was built without an answer format")
        return Record(key, self._answers.template(posting, key))

    def claim(
        self, scope: str, key: str | None, request: Message
    ) -> contextlib.AbstractAsyncContextManager[Claim]:
        """Hold (scope, key) across several units (``IdempotencyStore.claim``)."""
        return self._keys.claim(scope, key, request)


__all__ = [
    "AnswerFormat",
    "LedgerUnitOfWork",
    "Record",
    "RecordKey",
    "StoredAnswer",
    "database_errors_translated",
]
