"""The second pass: the spooled rows a chunk at a time, as a pipeline.

The next block is loaded in a thread, chunk N+1's records are read from the payment service while chunk N is
written and booked, and at most two loaded chunks wait, so memory stays bounded. Per chunk: our records in
batched reads and each row's outcome classified in memory (:func:`prepare`, reads only), then one recon
transaction that claims the rows, stores the mismatches and writes the chunk's bookings (pending), one ledger
call, and the auto-fixes (:func:`write_chunk`).

A chunk stays the spooled records (plain tuples, :data:`~recon_svc.settlement.parse.Record`): the usual charge
row (one order of ours, everything equal) is classified from its record and our order and written as such, with
no row, outcome or booking object (:func:`~recon_svc.settlement.classify.clean_charge_reference`); every other
row becomes a :class:`SettlementRow` and gets a :class:`RowOutcome` from the rules in classify.py.
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
from recon_svc.settlement.claims import ClaimRow, claim_rows
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
    clean_charge_reference,
)
from recon_svc.settlement.lifecycle import Resume
from recon_svc.settlement.mismatches import auto_fix, row_mismatch, store_many
from recon_svc.settlement.parse import Record
from recon_svc.settlement.records import ChunkBooking, OrderFixer, PaymentRecords, SettlementBooker
from recon_svc.settlement.report import PhaseTimes, RunReport, Tallies
from recon_svc.settlement.spool import RowMaker, read_records

Outcome = RowOutcome | str
"""A row's outcome; a ``str`` is a clean charge's: booked against ``psp_receivable`` with this reference of ours
(the checkout), matched, nothing to report."""

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

    def next_chunk() -> tuple[list[Record], int, float]:
        clock = time.perf_counter()
        block = read_records(spool)
        return block, spool.tell(), time.perf_counter() - clock

    # The next chunk is loaded in a thread while this one waits on the payment service, the recon database and
    # the ledger (other processes, other cores); at most two chunks wait loaded, so memory stays bounded.
    ready: asyncio.Queue[tuple[list[Record], int]] = asyncio.Queue(maxsize=2)
    parsing: asyncio.Future[tuple[list[Record], int, float]] | None = None

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
    previous: tuple[asyncio.Task[tuple[list[Record], list[Outcome]]], int] | None = None

    async def write(done: tuple[asyncio.Task[tuple[list[Record], list[Outcome]]], int]) -> None:
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


async def _outcomes(records: PaymentRecords, rules: Rules, chunk: list[Record]) -> list[Outcome]:
    """Each record's outcome. Charge rows: our orders in one batched read for the rows that carry our checkout
    id (every row of ours since metadata exists), the row-by-row path for the others."""
    row = RowMaker()
    by_checkout = {r[15].get("payment.checkout_id", "") for r in chunk if r[7] in CHARGE_CATEGORIES} - {""}
    found = await records.checkouts(sorted(by_checkout)) if by_checkout else {}
    outcomes: list[Outcome] = []
    for r in chunk:
        category = r[7]
        if category in CHARGE_CATEGORIES:
            checkout_id = r[15].get("payment.checkout_id", "")
            orders: list[OurOrder] | None
            if not checkout_id:
                orders = await records.checkout_for(row(r))
            else:
                orders = found.get(checkout_id) or None
                payment_intent = r[10]
                if orders is not None and payment_intent:
                    # Our metadata on someone else's PaymentIntent is not our charge (one order: no generator).
                    if len(orders) == 1:
                        theirs = orders[0].psp_reference
                        if theirs and theirs != payment_intent:
                            orders = None
                    elif any(o.psp_reference and o.psp_reference != payment_intent for o in orders):
                        orders = None
            clean = clean_charge_reference(r[3], r[4], r[5], orders, rules)
            outcomes.append(clean if clean is not None else classify_charge(row(r), orders, rules))
        elif category in REFUND_CATEGORIES:
            settlement_row = row(r)
            outcomes.append(classify_refund(settlement_row, await records.refund_for(settlement_row)))
        elif category in TRANSFER_CATEGORIES:
            payout_id = r[15].get("transfer.payout_id", "")
            payout = await records.payout_for(payout_id) if payout_id else None
            outcomes.append(classify_transfer(row(r), payout_id, payout))
        elif category in OTHER_CATEGORIES:
            outcomes.append(await match_other(row(r), records))
        else:
            outcomes.append(row_mismatch(Code.UNMATCHED_ROW, row(r)))
    return outcomes


async def prepare(
    chunk: list[Record],
    records: PaymentRecords,
    rules: Rules,
    report: RunReport,
    tallies: Tallies,
    times: PhaseTimes,
    resume: Resume,
) -> tuple[list[Record], list[Outcome]]:
    """The PSP's totals of a chunk, then our records for the rows still to reconcile (batched reads) and each
    row's outcome, classified in memory. Reads only: it runs while the previous chunk is being written."""
    psp = tallies.psp
    for r in chunk:
        totals = psp.get(key := f"{r[3]}:{r[7]}")
        if totals is None:
            totals = psp[key] = [0, 0, 0, 0]
        totals[0] += r[4]
        totals[1] += r[5]
        totals[2] += r[6]
        totals[3] += 1
    if resume.committed_line:
        # Counted by the interrupted run of this file: its chunks up to this line committed.
        done = sum(1 for r in chunk if r[0] <= resume.committed_line)
        report.already_counted += done
        chunk = chunk[done:]
    if not chunk:
        return chunk, []
    clock = time.perf_counter()
    outcomes = await _outcomes(records, rules, chunk)
    times.match += time.perf_counter() - clock
    return chunk, outcomes


async def write_chunk(
    engine: AsyncEngine,
    chunk: list[Record],
    outcomes: list[Outcome],
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
    if not chunk:
        return
    last_line = chunk[-1][0]
    clock = time.perf_counter()
    row = RowMaker()

    # A booking id per currency and account the gross goes to (a dispute's gross is not the PSP's debt) of the
    # chunk; a row names its booking in its claim, so the row and its money are written in the same transaction
    # and a row is booked at most once whatever happens afterwards.
    booking_ids: dict[tuple[str, Against], str] = {}
    seen: set[str] = set()
    claims: list[ClaimRow] = []
    claimed: list[tuple[Record, Outcome, Against | None]] = []
    repeats: list[Record] = []
    receivable = Against.PSP_RECEIVABLE
    for r, outcome in zip(chunk, outcomes, strict=True):
        bt = r[1]
        if bt in seen:
            repeats.append(r)  # the same id twice inside this chunk
            continue
        seen.add(bt)
        if isinstance(outcome, str):  # a clean charge: booked against the PSP's receivable
            against: Against | None = receivable
            reference = outcome
        elif outcome.booking is not None:
            against, reference = outcome.booking.against, outcome.booking.our_reference
        else:
            against, reference = None, outcome.reference
        booking_id = ""
        if against is not None:
            key = (r[3], against)
            booking_id = booking_ids.get(key) or booking_ids.setdefault(key, f"sb_{uuid.uuid4().hex}")
        claims.append((bt, r[7], r[3], r[4], r[5], r[8], reference, booking_id))
        claimed.append((r, outcome, against))
    bookings: dict[tuple[str, Against], ChunkBooking] = {}
    async with engine.begin() as conn:
        taken = await claim_rows(conn, report.run_id, claims)
        found: list[Mismatch] = []
        sums: dict[tuple[str, Against], list[int]] = {}  # (currency, against) → [gross, fee, rows]
        booked_totals = tallies.booked
        for r, outcome, against in claimed:
            if taken and r[1] in taken:
                before = taken[r[1]]
                if (
                    before is not None
                    and before.same_content
                    and before.run_id != report.run_id
                    and before.run_id not in resume.earlier_runs  # this file's own earlier line: a duplicate
                ):
                    # Counted by an earlier file with the same content (overlapping days).
                    report.already_counted += 1
                else:
                    found.extend(row_mismatch(Code.DUPLICATE_ROW, row(r)).mismatches)
                continue
            if isinstance(outcome, str):
                report.matched += 1
            else:
                report.matched += int(outcome.matched)
                found.extend(outcome.mismatches)
            if against is not None:
                report.booked += 1
                currency = r[3]
                total = sums.get(key := (currency, against))
                if total is None:
                    total = sums[key] = [0, 0, 0]
                total[0] += r[4]
                total[1] += r[5]
                total[2] += 1
                booked = booked_totals.get(currency)
                if booked is None:
                    booked = booked_totals[currency] = [0, 0]
                booked[0] += r[4]
                booked[1] += r[5]
        for r in repeats:
            found.extend(row_mismatch(Code.DUPLICATE_ROW, row(r)).mismatches)
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
