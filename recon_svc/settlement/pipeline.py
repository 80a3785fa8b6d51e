"""The second pass: the spooled rows a chunk at a time, as a pipeline.

The next block is loaded in a thread, chunk N+1's records are read from the payment service while chunk N is
written and booked, and at most two loaded chunks wait, so memory stays bounded. Per chunk: our records in
batched reads and each row's outcome classified in memory (:func:`prepare`, reads only), then one recon
transaction that claims the rows, stores the mismatches and writes the chunk's bookings (pending), one ledger
call, and the auto-fixes (:func:`write_chunk`).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from typing import BinaryIO

from sqlalchemy.ext.asyncio import AsyncEngine

from recon_svc.settlement import tables as t
from recon_svc.settlement.bookings import insert_pending, post_bookings
from recon_svc.settlement.categories import match_other
from recon_svc.settlement.claims import Claim, claim
from recon_svc.settlement.classify import (
    CHARGE_CATEGORIES,
    OTHER_CATEGORIES,
    REFUND_CATEGORIES,
    TRANSFER_CATEGORIES,
    Against,
    Classification,
    Code,
    Mismatch,
    OurOrder,
    RowOutcome,
    Rules,
    classify_charge,
    classify_refund,
    classify_transfer,
)
from recon_svc.settlement.lifecycle import Resume
from recon_svc.settlement.mismatches import auto_fix, row_mismatch, store_many
from recon_svc.settlement.parse import SettlementRow
from recon_svc.settlement.records import ChunkBooking, OrderFixer, PaymentRecords, SettlementBooker
from recon_svc.settlement.report import PhaseTimes, RunReport, Tallies
from recon_svc.settlement.spool import read_block

CHUNK_ROWS = 5000
"""Rows matched, classified and written per database transaction and booked per ledger call: large enough that
the per-call costs (gRPC, commit) vanish per row, small enough that a chunk's rows and records stay a few MiB."""


async def match_and_book(
    engine: AsyncEngine,
    spool: BinaryIO,
    records: PaymentRecords,
    booker: SettlementBooker,
    rules: Rules,
    report: RunReport,
    progress: Callable[[int], None] | None,
    fixer: OrderFixer | None,
    times: PhaseTimes,
    resume: Resume,
) -> None:
    """Reconcile every spooled row; the chunks' tallies end in ``report``. ``progress`` gets spool offsets."""
    tallies = Tallies()

    def next_chunk() -> tuple[list[SettlementRow], int, float]:
        clock = time.perf_counter()
        block = read_block(spool)
        return block, spool.tell(), time.perf_counter() - clock

    # The next chunk is loaded in a thread while this one waits on the payment service, the recon database and
    # the ledger (other processes, other cores); at most two chunks wait loaded, so memory stays bounded.
    ready: asyncio.Queue[tuple[list[SettlementRow], int]] = asyncio.Queue(maxsize=2)
    parsing: asyncio.Future[tuple[list[SettlementRow], int, float]] | None = None

    async def produce() -> None:
        nonlocal parsing
        while True:
            parsing = asyncio.get_running_loop().run_in_executor(None, next_chunk)
            chunk, offset, seconds = await parsing
            times.parse += seconds
            await ready.put((chunk, offset))
            if not chunk:
                return

    producer = asyncio.create_task(produce())
    previous: tuple[asyncio.Task[tuple[list[SettlementRow], list[RowOutcome]]], int] | None = None

    async def write(done: tuple[asyncio.Task[tuple[list[SettlementRow], list[RowOutcome]]], int]) -> None:
        reading, offset = done
        rows, outcomes = await reading
        await write_chunk(engine, rows, outcomes, booker, report, fixer, tallies, times, resume)
        if progress is not None:
            progress(offset)

    try:
        while True:
            get = asyncio.create_task(ready.get())
            await asyncio.wait([get, producer], return_when=asyncio.FIRST_COMPLETED)
            if not get.done():
                failure = producer.exception()
                if failure is not None:  # the loading failed: nothing more will come
                    get.cancel()
                    raise failure
                await get  # it finished: its last (empty) chunk is in the queue
            chunk, offset = get.result()
            # This chunk's records are read (payment service) while the previous one is written (recon database,
            # ledger): the other processes work while this one does.
            reading = (
                asyncio.create_task(prepare(chunk, records, rules, report, tallies, times, resume))
                if chunk
                else None
            )
            prior, previous = previous, ((reading, offset) if reading is not None else None)
            if prior is not None:
                await write(prior)
            if reading is None:
                break
        await producer
    finally:
        producer.cancel()
        if previous is not None and not previous[0].done():
            previous[0].cancel()
        if parsing is not None and not parsing.done():
            # A thread cannot be cancelled: let it finish its chunk before the caller closes the file.
            await asyncio.wait([parsing])
    tallies.into(report)


async def _charge_orders(
    records: PaymentRecords, rows: list[SettlementRow]
) -> dict[str, list[OurOrder] | None]:
    """Our orders for each charge row of a chunk, by balance transaction id: one batched read for the rows that
    carry our checkout id (every row of ours since metadata exists), the row-by-row path for the others."""
    by_checkout = {r.metadata.get("payment.checkout_id", "") for r in rows} - {""}
    found = await records.checkouts(sorted(by_checkout)) if by_checkout else {}
    out: dict[str, list[OurOrder] | None] = {}
    for row in rows:
        checkout_id = row.metadata.get("payment.checkout_id", "")
        if not checkout_id:
            out[row.balance_transaction_id] = await records.checkout_for(row)
            continue
        orders = found.get(checkout_id)
        if (
            orders
            and row.payment_intent_id
            and any(o.psp_reference and o.psp_reference != row.payment_intent_id for o in orders)
        ):
            orders = None  # our metadata on someone else's PaymentIntent is not our charge
        out[row.balance_transaction_id] = orders or None
    return out


async def _outcomes(records: PaymentRecords, rules: Rules, rows: list[SettlementRow]) -> list[RowOutcome]:
    charges = await _charge_orders(records, [r for r in rows if r.reporting_category in CHARGE_CATEGORIES])
    outcomes = []
    for row in rows:
        if row.reporting_category in CHARGE_CATEGORIES:
            outcomes.append(classify_charge(row, charges[row.balance_transaction_id], rules))
        elif row.reporting_category in REFUND_CATEGORIES:
            outcomes.append(classify_refund(row, await records.refund_for(row)))
        elif row.reporting_category in TRANSFER_CATEGORIES:
            payout_id = row.metadata.get("transfer.payout_id", "")
            payout = await records.payout_for(payout_id) if payout_id else None
            outcomes.append(classify_transfer(row, payout_id, payout))
        elif row.reporting_category in OTHER_CATEGORIES:
            outcomes.append(await match_other(row, records))
        else:
            outcomes.append(row_mismatch(Code.UNMATCHED_ROW, row))
    return outcomes


async def prepare(
    rows: list[SettlementRow],
    records: PaymentRecords,
    rules: Rules,
    report: RunReport,
    tallies: Tallies,
    times: PhaseTimes,
    resume: Resume,
) -> tuple[list[SettlementRow], list[RowOutcome]]:
    """The PSP's totals of a chunk, then our records for the rows still to reconcile (batched reads) and each
    row's outcome, classified in memory. Reads only: it runs while the previous chunk is being written."""
    for row in rows:
        totals = tallies.psp.get(key := f"{row.currency}:{row.reporting_category}")
        if totals is None:
            totals = tallies.psp[key] = [0, 0, 0, 0]
        totals[0] += row.gross_minor
        totals[1] += row.fee_minor
        totals[2] += row.net_minor
        totals[3] += 1
    if resume.committed_line:
        # Counted by the interrupted run of this file: its chunks up to this line committed.
        done = sum(1 for row in rows if row.line <= resume.committed_line)
        report.already_counted += done
        rows = rows[done:]
    if not rows:
        return rows, []
    clock = time.perf_counter()
    outcomes = await _outcomes(records, rules, rows)
    times.match += time.perf_counter() - clock
    return rows, outcomes


async def write_chunk(
    engine: AsyncEngine,
    rows: list[SettlementRow],
    outcomes: list[RowOutcome],
    booker: SettlementBooker,
    report: RunReport,
    fixer: OrderFixer | None,
    tallies: Tallies,
    times: PhaseTimes,
    resume: Resume,
    on_committed: Callable[[], None] | None = None,
) -> None:
    """Claim and book one chunk whose outcomes :func:`prepare` computed: one recon transaction that claims the
    rows, stores the mismatches and writes the chunk's bookings (pending), then one ledger call.
    ``on_committed`` is called once the transaction committed (the next chunk's writer may go on)."""
    if not rows:
        return
    last_line = rows[-1].line
    clock = time.perf_counter()

    # A booking id per currency and account the gross goes to (a dispute's gross is not the PSP's debt) of the
    # chunk; a row names its booking in its claim, so the row and its money are written in the same transaction
    # and a row is booked at most once whatever happens afterwards.
    booking_ids: dict[tuple[str, Against], str] = {}
    seen: set[str] = set()
    claims: list[Claim] = []
    outcome_of: list[RowOutcome] = []
    repeats: list[SettlementRow] = []
    for row, outcome in zip(rows, outcomes, strict=True):
        if row.balance_transaction_id in seen:
            repeats.append(row)  # the same id twice inside this chunk
            continue
        seen.add(row.balance_transaction_id)
        booking_id = ""
        if outcome.booking is not None:
            key = (row.currency, outcome.booking.against)
            booking_id = booking_ids.get(key) or booking_ids.setdefault(key, f"sb_{uuid.uuid4().hex}")
        reference = outcome.booking.our_reference if outcome.booking else outcome.reference
        claims.append(Claim(row, reference, booking_id))
        outcome_of.append(outcome)
    bookings: dict[tuple[str, Against], ChunkBooking] = {}
    async with engine.begin() as conn:
        taken = await claim(conn, report.run_id, claims)
        found: list[Mismatch] = []
        sums: dict[tuple[str, Against], list[int]] = {}  # (currency, against) → [gross, fee, rows]
        for c, outcome in zip(claims, outcome_of, strict=True):
            row = c.row
            bt = row.balance_transaction_id
            if bt in taken:
                before = taken[bt]
                if (
                    before is not None
                    and before.same_content
                    and before.run_id != report.run_id
                    and before.run_id not in resume.earlier_runs  # this file's own earlier line: a duplicate
                ):
                    # Counted by an earlier file with the same content (overlapping days).
                    report.already_counted += 1
                else:
                    found.extend(row_mismatch(Code.DUPLICATE_ROW, row).mismatches)
                continue
            report.matched += int(outcome.matched)
            found.extend(outcome.mismatches)
            if outcome.booking is not None:
                report.booked += 1
                total = sums.setdefault((row.currency, outcome.booking.against), [0, 0, 0])
                total[0] += row.gross_minor
                total[1] += row.fee_minor
                total[2] += 1
                booked = tallies.booked.setdefault(row.currency, [0, 0])
                booked[0] += row.gross_minor
                booked[1] += row.fee_minor
        for row in repeats:
            found.extend(row_mismatch(Code.DUPLICATE_ROW, row).mismatches)
        stored = await store_many(conn, report.run_id, found)
        await conn.execute(
            t.files.update().where(t.files.c.sha256 == report.file_sha256).values(committed_line=last_line)
        )
        for key, total in sums.items():
            bookings[key] = ChunkBooking(booking_ids[key], key[0], total[0], total[1], total[2], key[1])
        await insert_pending(conn, report.run_id, bookings.values())
    if on_committed is not None:
        on_committed()
    times.classify += time.perf_counter() - clock
    clock = time.perf_counter()
    if bookings:
        await post_bookings(engine, booker, [b.booking_id for b in bookings.values()], wait=True)
    times.book += time.perf_counter() - clock
    # After the chunk's transaction: an auto-fix calls another service and must not hold the chunk's locks.
    for m, mismatch_id in stored:
        tallies.codes[m.code.value] += 1
        if m.classification is Classification.AUTO_FIXABLE and await auto_fix(engine, fixer, m, mismatch_id):
            report.auto_fixed += 1
        else:
            tallies.classes[m.classification.value] += 1
