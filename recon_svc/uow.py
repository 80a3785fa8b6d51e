"""The reconciliation service's unit of work: the one owner of its connections and transactions.

Services receive it and ask for ``read()`` or ``transaction()``; the servicer never touches the
database. Recon has no idempotent writes yet (its runs are records of reads, not effects), so this
unit of work holds no idempotency store; database errors mean nothing particular to its callers
and surface as they are (INTERNAL).
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection

from svckit.uow import EngineUnitOfWork


class ReconUnitOfWork(EngineUnitOfWork):
    """``read()`` and ``transaction()`` on the reconciliation database (svckit's)."""

    def bound_to(self, conn: AsyncConnection) -> ReconUnitOfWork:
        unit = ReconUnitOfWork(self._engine)
        unit._bound = conn
        return unit
