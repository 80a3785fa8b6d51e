"""Every query of the reconciliation service; functions take the unit of work's connection."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from recon_svc.models import reconciliation_runs as runs


async def list_runs(conn: AsyncConnection, limit: int, before_id: int | None) -> list[sa.Row]:
    """Newest first, keyset-paginated on the surrogate id."""
    stmt = sa.select(runs).order_by(runs.c.id.desc()).limit(limit)
    if before_id is not None:
        stmt = stmt.where(runs.c.id < before_id)
    return list((await conn.execute(stmt)).all())


async def start_run(conn: AsyncConnection, run_id: str, kind: str) -> sa.Row:
    """A new run in state RUNNING."""
    stmt = runs.insert().values(run_id=run_id, kind=kind, state="RUNNING").returning(runs)
    return (await conn.execute(stmt)).one()


async def finish_run(conn: AsyncConnection, run_id: str, state: str, **outcome: object) -> sa.Row:
    """Move a running run to ``state`` with its outcome (``ok``, counts, ``failure_reason``)."""
    stmt = (
        runs.update()
        .where(runs.c.run_id == run_id, runs.c.state == "RUNNING")
        .values(state=state, finished_at=sa.func.now(), **outcome)
        .returning(runs)
    )
    return (await conn.execute(stmt)).one()
