"""Our captured orders of the expected window that no settlement file has reached: each is checked against the
rows counted so far (by any file), a page at a time, so a busy day never sits in memory. Pending inside the
grace period, MISSING_FROM_PSP (manual) after it."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from recon_svc.settlement import tables as t
from recon_svc.settlement.classify import OurOrder, Rules, checkout_reference, missing_from_psp
from recon_svc.settlement.mismatches import store
from recon_svc.settlement.records import PaymentRecords
from recon_svc.settlement.report import RunReport

MISSING_CHUNK = 1000
"""Our orders are checked against the counted rows a page at a time, so a busy day never sits in memory."""


async def missing_orders(
    engine: AsyncEngine,
    records: PaymentRecords,
    rules: Rules,
    report: RunReport,
    window: tuple[dt.datetime, dt.datetime],
    now: dt.datetime,
) -> None:
    chunk: list[OurOrder] = []

    async def check() -> None:
        refs = sorted({checkout_reference(o.checkout_id) for o in chunk})
        async with engine.begin() as conn:
            seen = set(
                (
                    await conn.execute(
                        sa.select(t.rows.c.our_reference).where(t.rows.c.our_reference.in_(refs))
                    )
                )
                .scalars()
                .all()
            )
            found, pending = missing_from_psp(chunk, seen, now, rules)
            for m in found:
                await store(conn, report.run_id, m)
        report.pending += pending
        for m in found:
            report.count_open(m.code.value, m.classification.value)
        chunk.clear()

    async for order in records.captured_orders(*window):
        chunk.append(order)
        if len(chunk) >= MISSING_CHUNK:
            await check()
    if chunk:
        await check()
