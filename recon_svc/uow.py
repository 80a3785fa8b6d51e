"""The reconciliation service's unit of work: the one owner of its connections and transactions.

Services receive it and ask for ``read()`` or ``transaction()``; the servicer never touches the
database. Recon has no idempotent writes yet (its runs are records of reads, not effects), so this
unit of work holds no idempotency store; database errors mean nothing particular to its callers
and surface as they are (INTERNAL).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine


class ReconUnitOfWork:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    @contextlib.asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        async with self._engine.connect() as conn:
            yield conn

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        """One transaction, committed at the end or rolled back on any exception."""
        async with self._engine.begin() as conn:
            yield conn
