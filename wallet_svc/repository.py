"""Every query of the wallet service; functions take the unit of work's connection."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from wallet_svc.models import wallets


async def get_wallet(conn: AsyncConnection, seller_id: str, currency: str) -> sa.Row | None:
    stmt = sa.select(wallets).where(wallets.c.seller_id == seller_id, wallets.c.currency == currency)
    return (await conn.execute(stmt)).first()
