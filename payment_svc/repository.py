"""Every query of the payment service; functions take the unit of work's connection."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from payment_svc.models import payment_orders


async def get_order(conn: AsyncConnection, payment_order_id: str) -> sa.Row | None:
    stmt = sa.select(payment_orders).where(payment_orders.c.payment_order_id == payment_order_id)
    return (await conn.execute(stmt)).first()
