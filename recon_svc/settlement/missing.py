"""Our pay-outs that no settlement file has reached: each of the window's pay-outs transferred at the PSP is
checked against the transfer rows counted so far (by any file), a page at a time, so a busy day never sits in
memory. Pending inside the grace period, MISSING_FROM_PSP (manual) after it, like orders (run.py)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from recon_svc.settlement import tables as t
from recon_svc.settlement.classify import (
    Mismatch,
    OurPayout,
    Rules,
    missing_payouts_from_psp,
    payout_reference,
)
from recon_svc.settlement.records import PaymentRecords

CHUNK = 1000

Store = Callable[[AsyncConnection, str, Mismatch], Awaitable[str]]


async def missing_payouts(
    engine: AsyncEngine,
    records: PaymentRecords,
    rules: Rules,
    window: tuple[dt.datetime, dt.datetime],
    now: dt.datetime,
    run_id: str,
    store: Store,
) -> tuple[list[Mismatch], int]:
    """The MISSING_FROM_PSP mismatches stored (with ``store``) for the window's pay-outs, and how many are
    still pending."""
    found: list[Mismatch] = []
    pending = 0
    chunk: list[OurPayout] = []

    async def check() -> None:
        nonlocal pending
        refs = sorted(payout_reference(p.payout_id) for p in chunk)
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
            missing, waiting = missing_payouts_from_psp(chunk, seen, now, rules)
            for m in missing:
                await store(conn, run_id, m)
        found.extend(missing)
        pending += waiting
        chunk.clear()

    async for payout in records.payouts_created(*window):
        chunk.append(payout)
        if len(chunk) >= CHUNK:
            await check()
    if chunk:
        await check()
    return found, pending
