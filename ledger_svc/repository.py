"""Every query of the ledger; functions take the unit of work's connection."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger_svc.models import accounts


async def insert_account(conn: AsyncConnection, name: str, type_: str, currency: str) -> sa.Row | None:
    """Insert an account; None when the name is taken."""
    stmt = (
        insert(accounts)
        .values(name=name, type=type_, currency=currency)
        .on_conflict_do_nothing(index_elements=[accounts.c.name])
        .returning(accounts)
    )
    return (await conn.execute(stmt)).first()


async def get_account(conn: AsyncConnection, name: str) -> sa.Row | None:
    return (await conn.execute(sa.select(accounts).where(accounts.c.name == name))).first()
