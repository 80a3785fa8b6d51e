"""Every query of the reconciliation service."""

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
