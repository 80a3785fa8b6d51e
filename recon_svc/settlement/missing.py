"""Our pay-outs and refunds that no settlement file has reached: each of the window's pay-outs transferred at the
PSP, and each of its succeeded refunds, is checked against the rows counted so far (by any file), a page at a
time, so a busy day never sits in memory. Pending inside the grace period, MISSING_FROM_PSP (manual) after it,
like orders (missing_orders.py)."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import TypeVar

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from recon_svc.settlement import tables as t
from recon_svc.settlement.classify import (
    Mismatch,
    OurPayout,
    OurRefund,
    Rules,
    missing_payouts_from_psp,
    missing_refunds_from_psp,
    payout_reference,
    refund_reference,
)
from recon_svc.settlement.records import PaymentRecords

CHUNK = 1000

Store = Callable[[AsyncConnection, str, Mismatch], Awaitable[str]]
T = TypeVar("T")


async def _missing(
    engine: AsyncEngine,
    records: AsyncIterator[T],
    reference: Callable[[T], str],
    decide: Callable[[Sequence[T], set[str]], tuple[list[Mismatch], int]],
    run_id: str,
    store: Store,
) -> tuple[list[Mismatch], int]:
    """The mismatches ``decide`` finds among ``records`` (given the references the counted rows carry), stored
    with ``store`` a chunk at a time, and how many are still pending."""
    found: list[Mismatch] = []
    pending = 0
    chunk: list[T] = []

    async def check() -> None:
        nonlocal pending
        refs = sorted(reference(r) for r in chunk)
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
            missing, waiting = decide(chunk, seen)
            for m in missing:
                await store(conn, run_id, m)
        found.extend(missing)
        pending += waiting
        chunk.clear()

    async for record in records:
        chunk.append(record)
        if len(chunk) >= CHUNK:
            await check()
    if chunk:
        await check()
    return found, pending


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

    def decide(chunk: Sequence[OurPayout], seen: set[str]) -> tuple[list[Mismatch], int]:
        return missing_payouts_from_psp(chunk, seen, now, rules)

    return await _missing(
        engine,
        records.payouts_created(*window),
        lambda p: payout_reference(p.payout_id),
        decide,
        run_id,
        store,
    )


async def missing_refunds(
    engine: AsyncEngine,
    records: PaymentRecords,
    rules: Rules,
    window: tuple[dt.datetime, dt.datetime],
    now: dt.datetime,
    run_id: str,
    store: Store,
) -> tuple[list[Mismatch], int]:
    """The MISSING_FROM_PSP mismatches stored for the window's succeeded refunds, and how many are pending."""

    def decide(chunk: Sequence[OurRefund], seen: set[str]) -> tuple[list[Mismatch], int]:
        return missing_refunds_from_psp(chunk, seen, now, rules)

    return await _missing(
        engine,
        records.refunds_succeeded(*window),
        lambda r: refund_reference(r.refund_id),
        decide,
        run_id,
        store,
    )


async def missing_records(
    engine: AsyncEngine,
    records: PaymentRecords,
    rules: Rules,
    window: tuple[dt.datetime, dt.datetime],
    now: dt.datetime,
    run_id: str,
    store: Store,
) -> tuple[list[Mismatch], int]:
    """Our pay-outs and refunds of the window missing from the files (orders are missing_orders.py's): the mismatches
    stored and how many are still pending."""
    payouts, pending_payouts = await missing_payouts(engine, records, rules, window, now, run_id, store)
    refunds, pending_refunds = await missing_refunds(engine, records, rules, window, now, run_id, store)
    return payouts + refunds, pending_payouts + pending_refunds
