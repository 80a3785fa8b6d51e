"""A chunk's bookings: written ``pending`` in the chunk's recon transaction (one per currency and account the
gross goes to), then posted in the ledger under their own idempotency keys and marked ``posted``."""

from __future__ import annotations

from collections.abc import Iterable

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from recon_svc.settlement import tables as t
from recon_svc.settlement.classify import Against
from recon_svc.settlement.records import ChunkBooking, SettlementBooker


async def insert_pending(conn: AsyncConnection, run_id: str, bookings: Iterable[ChunkBooking]) -> None:
    rows = [
        {"booking_id": b.booking_id, "run_id": run_id, "currency": b.currency, "against": b.against.value,
         "gross_minor": b.gross_minor, "fee_minor": b.fee_minor, "row_count": b.row_count, "state": "pending"}
        for b in bookings
    ]  # fmt: skip
    if rows:
        await conn.execute(t.bookings.insert(), rows)


async def post_bookings(
    engine: AsyncEngine, booker: SettlementBooker, booking_ids: list[str] | None, *, wait: bool
) -> int:
    """Post pending bookings to the ledger and mark them posted; how many were posted.

    ``booking_ids`` None means every pending booking (one left by an interrupted run). Each booking row is
    locked while it is posted, so two runs never post it at once; ``wait`` False skips one another run holds.
    The ledger call is keyed by the booking id, so a booking posted before a crash is replayed, not posted again.
    """
    async with engine.begin() as conn:
        stmt = sa.select(t.bookings).where(t.bookings.c.state == "pending").order_by(t.bookings.c.booking_id)
        if booking_ids is not None:
            stmt = stmt.where(t.bookings.c.booking_id.in_(booking_ids))
        due = list(await conn.execute(stmt.limit(1000).with_for_update(skip_locked=not wait)))
        if not due:
            return 0
        chunk = [
            ChunkBooking(
                r.booking_id, r.currency, r.gross_minor, r.fee_minor, r.row_count, Against(r.against)
            )
            for r in due
        ]
        moving = [b for b in chunk if b.gross_minor or b.fee_minor]
        ids = (
            dict(zip((b.booking_id for b in moving), await booker.post(moving), strict=True))
            if moving
            else {}
        )
        await conn.execute(
            sa.text(
                "UPDATE settlement_bookings SET state = 'posted', posted_at = now(), ledger_transaction_id = u.tx"
                " FROM unnest(CAST(:ids AS text[]), CAST(:txs AS bigint[])) AS u(id, tx)"
                " WHERE settlement_bookings.booking_id = u.id"
            ),
            {"ids": [b.booking_id for b in chunk], "txs": [ids.get(b.booking_id) for b in chunk]},
        )
    return len(chunk)
