"""One reconciliation run of a settlement file: validate, match, classify, book, record, report.

Two streaming passes keep memory flat and make a bad file book nothing:

1. validate every row and hash the bytes, spooling each good row's values to a temporary file; a refused file
   or any malformed row fails the run with the errors (line and reason), and a file whose SHA-256 was ingested
   before is recognised and changes nothing;
2. a chunk of rows at a time (the next one parsed in a thread meanwhile): read our records for the chunk in
   batched calls, classify the differences in memory, claim the rows, store the mismatches and write the
   chunk's bookings in one recon transaction, then book them in the ledger in one call (one transaction per
   currency, idempotent by booking id). A row is claimed once, with the booking that carries its money, so
   nothing is booked twice; a run that dies mid-file is resumed by running the same file again.

A balance transaction already counted by an earlier file (overlapping days) with the same content is skipped;
with other content, or twice in one file, it is a DUPLICATE_ROW. Transfers are matched to our pay-outs (and book
nothing: the pay-out booked itself). Disputes, refund failures, transfer reversals, the PSP's payouts, fees and
adjustments are matched in categories.py; categories of products we do not use become UNMATCHED_ROW for a
person, never silently dropped.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import marshal
import tempfile
import time
import uuid
from collections import Counter as Tally
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import Any, BinaryIO

import sqlalchemy as sa
import structlog
from prometheus_client import Counter
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from recon_svc.settlement import tables as t
from recon_svc.settlement.categories import match_other, redrive_settlement
from recon_svc.settlement.classify import (
    CAPTURED,
    CHARGE_CATEGORIES,
    CLASSIFICATION,
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
    checkout_reference,
    classify_charge,
    classify_refund,
    classify_transfer,
    missing_from_psp,
)
from recon_svc.settlement.missing import missing_records
from recon_svc.settlement.parse import RowError, SettlementFileRefused, SettlementParser, SettlementRow
from recon_svc.settlement.records import ChunkBooking, OrderFixer, PaymentRecords, SettlementBooker
from svckit.errors import DomainError

log = structlog.get_logger(__name__)

RUNS = Counter("recon_settlement_runs_total", "Settlement runs by final state", ["state"])
UNCLASSIFIED = Counter(
    "recon_settlement_unclassified_total", "Unclassified mismatches found by settlement runs"
)

CHUNK_ROWS = 5000
"""Rows matched, classified and written per database transaction and booked per ledger call: large enough that
the per-call costs (gRPC, commit) vanish per row, small enough that a chunk's rows and records stay a few MiB."""


MAX_REPORTED_ROW_ERRORS = 100
"""A broken file may have a million bad rows; the run keeps the first ones (and counts them all)."""


@dataclass
class RunReport:
    run_id: str
    state: str
    """SUCCEEDED, FAILED (refused file or malformed rows: nothing booked) or DUPLICATE_FILE (nothing done)."""
    file_sha256: str = ""
    rows_read: int = 0
    row_errors: list[dict[str, Any]] = field(default_factory=list)
    row_error_count: int = 0
    error: str = ""
    matched: int = 0
    booked: int = 0
    already_counted: int = 0
    pending: int = 0
    auto_fixed: int = 0
    """Our captured orders of the expected window that no file has reached yet, inside the grace period."""
    mismatches_by_code: dict[str, int] = field(default_factory=dict)
    open_by_classification: dict[str, int] = field(default_factory=dict)
    """Mismatches left open (auto-fixed ones are counted in ``auto_fixed``, and by code)."""
    psp_totals: dict[str, dict[str, int]] = field(default_factory=dict)
    """``<CUR>:<reporting_category>`` → gross/fee/net in minor units and the row count, as the PSP reports them."""
    booked_totals: dict[str, dict[str, int]] = field(default_factory=dict)
    """``<CUR>`` → gross/fee we booked."""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _digest(row: SettlementRow) -> str:
    key = (row.balance_transaction_id, row.currency, row.gross_minor, row.fee_minor, row.reporting_category,
           row.source_id)  # fmt: skip
    return hashlib.sha256(repr(key).encode()).hexdigest()


async def _start(engine: AsyncEngine, run_id: str, now: dt.datetime) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            t.runs.insert().values(
                run_id=run_id, state="RUNNING", interval_start=now, interval_end=now, kind="SETTLEMENT_FILE"
            )
        )


async def _finish_and_count(
    engine: AsyncEngine, report: RunReport, first: dt.datetime | None, last: dt.datetime | None
) -> None:
    await _finish(engine, report, first, last)
    RUNS.labels(report.state).inc()
    UNCLASSIFIED.inc(report.open_by_classification.get("unclassified", 0))


async def _finish(
    engine: AsyncEngine, report: RunReport, first: dt.datetime | None, last: dt.datetime | None
) -> None:
    values: dict[str, Any] = {
        "state": "FAILED" if report.state == "FAILED" else "SUCCEEDED",
        "report": json.loads(json.dumps(report.as_dict())),
        "file_sha256": report.file_sha256 or None,
        "error": report.error or None,
        "finished_at": sa.func.now(),
    }
    if first is not None and last is not None:
        values.update(interval_start=first, interval_end=last)
    async with engine.begin() as conn:
        await conn.execute(t.runs.update().where(t.runs.c.run_id == report.run_id).values(**values))


def _validate(
    source: BinaryIO, report: RunReport, spool: BinaryIO, chunk_rows: int
) -> tuple[dt.datetime | None, dt.datetime | None]:
    """First pass: every row checked, the bytes hashed, and each good row spooled (marshal) for the second pass,
    which then reads plain values instead of parsing and checking the CSV again."""
    parser = SettlementParser(source)
    first = last = None
    block: list[tuple[Any, ...]] = []
    for item in parser:
        if isinstance(item, RowError):
            report.row_error_count += 1
            if len(report.row_errors) < MAX_REPORTED_ROW_ERRORS:
                report.row_errors.append({"line": item.line, "reason": item.reason, "message": item.message})
            continue
        report.rows_read += 1
        first = item.created_utc if first is None else min(first, item.created_utc)
        last = item.created_utc if last is None else max(last, item.created_utc)
        if not report.row_error_count:  # a file with a bad row books nothing: no need to keep more of it
            block.append(item.to_record())
            if len(block) >= chunk_rows:  # one marshal record per chunk: one load each, not one per row
                marshal.dump(block, spool)
                block = []
    if block and not report.row_error_count:
        marshal.dump(block, spool)
    report.file_sha256 = parser.sha256
    return first, last


@dataclass(frozen=True)
class _Resume:
    """Where an interrupted run of the same file stopped: its last committed line and the runs that claimed."""

    committed_line: int = 0
    earlier_runs: frozenset[str] = frozenset()


async def _claim_file(engine: AsyncEngine, report: RunReport, size: int) -> _Resume | None:
    """Claim the file for this run; None when it was reconciled before (DUPLICATE_FILE).

    A file whose earlier run never completed (the process died mid-file) is taken over: its rows claimed
    already are skipped as counted, the rest reconciled; the interrupted run is closed FAILED saying so. Two
    runs of one file at once never get here: the second finds the file's advisory lock taken.
    """
    async with engine.begin() as conn:
        claimed = await conn.execute(
            insert(t.files)
            .values(sha256=report.file_sha256, size_bytes=size, run_id=report.run_id)
            .on_conflict_do_nothing()
            .returning(t.files.c.sha256)
        )
        if claimed.first() is not None:
            return _Resume()
        earlier = (
            await conn.execute(
                sa.select(t.files.c.run_id, t.files.c.completed_at, t.files.c.committed_line)
                .where(t.files.c.sha256 == report.file_sha256)
                .with_for_update()
            )
        ).one()
        if earlier.completed_at is not None:
            return None
        await conn.execute(
            t.files.update().where(t.files.c.sha256 == report.file_sha256).values(run_id=report.run_id)
        )
        await conn.execute(
            t.runs.update()
            .where(t.runs.c.run_id == earlier.run_id, t.runs.c.state == "RUNNING")
            .values(
                state="FAILED",
                error=f"interrupted; resumed by run {report.run_id}",
                file_sha256=report.file_sha256,
                finished_at=sa.func.now(),
            )
        )
        runs = (
            await conn.execute(
                sa.select(t.runs.c.run_id).where(
                    t.runs.c.file_sha256 == report.file_sha256, t.runs.c.run_id != report.run_id
                )
            )
        ).scalars()
        resume = _Resume(earlier.committed_line, frozenset(runs) | {earlier.run_id})
    log.warning("resuming an interrupted settlement file", run_id=report.run_id, interrupted=earlier.run_id,
                after_line=resume.committed_line)  # fmt: skip
    return resume


async def _store(conn: AsyncConnection, run_id: str, m: Mismatch) -> str:
    mismatch_id = f"mm_{uuid.uuid4().hex}"
    await conn.execute(
        t.mismatches.insert().values(
            mismatch_id=mismatch_id,
            run_id=run_id,
            code=m.code.value,
            classification=m.classification.value,
            state="open",
            balance_transaction_id=m.balance_transaction_id,
            our_reference=m.our_reference,
            currency=m.currency,
            amount_minor=m.amount_minor,
            differences=[{"field": d.field, "ours": d.ours, "theirs": d.theirs} for d in m.differences],
            line=m.line,
        )
    )
    await conn.execute(
        t.actions.insert().values(
            mismatch_id=mismatch_id, actor="recon", action="opened", detail=f"{m.code.value} in run {run_id}"
        )
    )
    return mismatch_id


async def _settle_mismatch(
    engine: AsyncEngine, mismatch_id: str, state: str, action: str, detail: str
) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            t.mismatches.update().where(t.mismatches.c.mismatch_id == mismatch_id).values(state=state)
        )
        await conn.execute(
            t.actions.insert().values(mismatch_id=mismatch_id, actor="recon", action=action, detail=detail)
        )


async def _auto_fix(engine: AsyncEngine, fixer: OrderFixer | None, m: Mismatch, mismatch_id: str) -> bool:
    """Run the standard procedure of an auto-fixable mismatch; True when it is fixed. Without a fixer
    (propose-only) the mismatch stays open with the procedure proposed."""
    if m.code is Code.FEE_DIFFERS:
        # The settlement was booked with the PSP's fee, so the ledger already carries the difference.
        await _settle_mismatch(engine, mismatch_id, "auto_fixed", "auto_fixed", "booked the PSP's fee")
        return True
    if fixer is None or m.code not in (Code.PSP_CHARGED_ORDER_NOT_SUCCESS, Code.SETTLEMENT_NOT_BOOKED):
        await _settle_mismatch(
            engine, mismatch_id, "open", "proposed", f"standard procedure for {m.code.value}"
        )
        return False
    order_id = m.our_reference.removeprefix("order:")
    if m.code is Code.SETTLEMENT_NOT_BOOKED:
        return await redrive_settlement(fixer, order_id, partial(_settle_mismatch, engine, mismatch_id))
    try:
        order = await fixer.recheck(order_id)
    except DomainError as exc:
        await _settle_mismatch(engine, mismatch_id, "open", "auto_fix_failed", f"{exc.reason}: {exc.message}")
        return False
    if order.state not in CAPTURED:
        await _settle_mismatch(
            engine, mismatch_id, "open", "auto_fix_failed", f"order still {order.state.value}"
        )
        return False
    await _settle_mismatch(
        engine,
        mismatch_id,
        "auto_fixed",
        "auto_fixed",
        f"payment service re-checked the order: {order.state.value}",
    )
    return True


async def reconcile_file(
    engine: AsyncEngine,
    source: BinaryIO,
    records: PaymentRecords,
    booker: SettlementBooker,
    rules: Rules,
    *,
    now: dt.datetime | None = None,
    progress: Callable[[int], None] | None = None,
    expected_window: tuple[dt.datetime, dt.datetime] | None = None,
    fixer: OrderFixer | None = None,
    times: PhaseTimes | None = None,
    chunk_rows: int = CHUNK_ROWS,
) -> RunReport:
    """Reconcile one settlement file, read once (the second pass reads the spooled rows). ``progress`` gets byte
    offsets of the file.

    ``expected_window``: our orders captured in it should be in this or an earlier file; each that is not is
    pending until ``rules.grace`` has passed since its creation, then MISSING_FROM_PSP.
    """
    now = now or dt.datetime.now(dt.UTC)
    times = times if times is not None else PhaseTimes()
    report = RunReport(run_id=f"rr_{uuid.uuid4().hex}", state="RUNNING")
    await _start(engine, report.run_id, now)
    clock = time.perf_counter()
    with tempfile.TemporaryFile() as spool:
        return await _run(engine, source, spool, records, booker, rules, report, now, progress, expected_window,
                          fixer, times, chunk_rows, clock)  # fmt: skip


async def _run(
    engine: AsyncEngine,
    source: BinaryIO,
    spool: BinaryIO,
    records: PaymentRecords,
    booker: SettlementBooker,
    rules: Rules,
    report: RunReport,
    now: dt.datetime,
    progress: Callable[[int], None] | None,
    expected_window: tuple[dt.datetime, dt.datetime] | None,
    fixer: OrderFixer | None,
    times: PhaseTimes,
    chunk_rows: int,
    clock: float,
) -> RunReport:
    try:
        first, last = _validate(source, report, spool, chunk_rows)
    except SettlementFileRefused as exc:
        report.state, report.error = "FAILED", exc.message
        await _finish_and_count(engine, report, None, None)
        log.error("settlement file refused", run_id=report.run_id, reason=exc.reason, detail=exc.message)
        return report
    if report.row_error_count:
        report.state = "FAILED"
        report.error = f"{report.row_error_count} malformed row(s); nothing was booked"
        report.rows_read = 0
        await _finish_and_count(engine, report, first, last)
        log.error("settlement file has malformed rows", run_id=report.run_id, rows=report.row_error_count)
        return report
    times.parse += time.perf_counter() - clock
    # A session advisory lock on the file for the whole run: a second run of the same file while this one is
    # alive stops here, and a crashed run's lock went with its session, so its file can be resumed.
    async with engine.connect() as lock:
        key = int(report.file_sha256[:15], 16)
        taken = (await lock.execute(sa.select(sa.func.pg_try_advisory_lock(key)))).scalar()
        await lock.commit()  # a session lock outlives the transaction; no transaction stays open for the run
        if not taken:
            report.state, report.rows_read = "DUPLICATE_FILE", 0
            report.error = "the same file is being reconciled by another run right now"
            await _finish_and_count(engine, report, first, last)
            return report
        try:
            return await _reconcile_claimed(engine, source, spool, records, booker, rules, report, now, progress,
                                            expected_window, fixer, times, first, last)  # fmt: skip
        finally:
            await lock.execute(sa.select(sa.func.pg_advisory_unlock(key)))
            await lock.commit()


async def _reconcile_claimed(
    engine: AsyncEngine,
    source: BinaryIO,
    spool: BinaryIO,
    records: PaymentRecords,
    booker: SettlementBooker,
    rules: Rules,
    report: RunReport,
    now: dt.datetime,
    progress: Callable[[int], None] | None,
    expected_window: tuple[dt.datetime, dt.datetime] | None,
    fixer: OrderFixer | None,
    times: PhaseTimes,
    first: dt.datetime | None,
    last: dt.datetime | None,
) -> RunReport:
    resume = await _claim_file(engine, report, source.tell())
    if resume is None:
        report.state = "DUPLICATE_FILE"
        report.rows_read = 0
        await _finish_and_count(engine, report, first, last)
        return report
    # Bookings an interrupted run wrote but did not post (a crash between its chunk's commit and the ledger's
    # answer) are posted first, under their own keys: the ledger replays any it had already posted.
    await post_bookings(engine, booker, None, wait=False)
    size = source.tell()
    spooled = spool.tell()
    spool.seek(0)

    def progress_in_source(offset: int) -> None:
        if progress is not None:  # the spool's position, as a share of the file's bytes
            progress(size if not spooled else offset * size // spooled)

    await _match_and_book(
        engine, spool, records, booker, rules, report, progress_in_source, fixer, times, resume
    )
    if expected_window is not None:
        await _missing(engine, records, rules, report, expected_window, now)
        found, pending = await missing_records(
            engine, records, rules, expected_window, now, report.run_id, _store
        )
        report.pending += pending
        for m in found:
            report.mismatches_by_code[m.code.value] = report.mismatches_by_code.get(m.code.value, 0) + 1
            key = m.classification.value
            report.open_by_classification[key] = report.open_by_classification.get(key, 0) + 1
    report.state = "SUCCEEDED"
    async with engine.begin() as conn:
        await conn.execute(
            t.files.update().where(t.files.c.sha256 == report.file_sha256).values(completed_at=sa.func.now())
        )
    await _finish_and_count(engine, report, first, last)
    if report.open_by_classification.get("unclassified"):
        log.error("settlement run left unclassified mismatches", run_id=report.run_id,
                  count=report.open_by_classification["unclassified"])  # fmt: skip
    return report


@dataclass
class _Tallies:
    codes: Tally[str] = field(default_factory=Tally)
    classes: Tally[str] = field(default_factory=Tally)
    psp: dict[str, list[int]] = field(default_factory=dict)
    """``<CUR>:<category>`` → [gross, fee, net, rows]: plain lists, as Counter.update costs µs per row."""
    booked: dict[str, list[int]] = field(default_factory=dict)
    """``<CUR>`` → [gross, fee]."""


@dataclass
class PhaseTimes:
    """Seconds spent per phase of a run (the benchmark prints them; a run's report does not keep them)."""

    parse: float = 0.0
    """Validating and hashing (first pass) and parsing again (second pass)."""
    match: float = 0.0
    """Fetching our records for the rows (payment service)."""
    classify: float = 0.0
    """Comparing in memory, claiming the rows and writing mismatches (recon database)."""
    book: float = 0.0
    """Posting the chunks' bookings (ledger) and marking them posted."""


async def _match_and_book(
    engine: AsyncEngine,
    spool: BinaryIO,
    records: PaymentRecords,
    booker: SettlementBooker,
    rules: Rules,
    report: RunReport,
    progress: Callable[[int], None] | None,
    fixer: OrderFixer | None,
    times: PhaseTimes,
    resume: _Resume,
) -> None:
    tallies = _Tallies()

    def next_chunk() -> tuple[list[SettlementRow], int, float]:
        """The next block of rows the first pass validated and spooled."""
        clock = time.perf_counter()
        try:
            block = marshal.load(spool)
        except EOFError:
            block = []
        row = SettlementRow.from_record
        return [row(r) for r in block], spool.tell(), time.perf_counter() - clock

    # The next chunk is parsed in a thread while this one waits on the payment service, the recon database and
    # the ledger (other processes, other cores); at most two chunks wait parsed, so memory stays bounded.
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

    async def _write(done: tuple[asyncio.Task[tuple[list[SettlementRow], list[RowOutcome]]], int]) -> None:
        reading, offset = done
        rows, outcomes = await reading
        await _chunk(engine, rows, outcomes, booker, report, fixer, tallies, times, resume)
        if progress is not None:
            progress(offset)

    try:
        while True:
            get = asyncio.create_task(ready.get())
            await asyncio.wait([get, producer], return_when=asyncio.FIRST_COMPLETED)
            if not get.done():
                failure = producer.exception()
                if failure is not None:  # the parsing failed: nothing more will come
                    get.cancel()
                    raise failure
                await get  # it finished: its last (empty) chunk is in the queue
            chunk, offset = get.result()
            # This chunk's records are read (payment service) while the previous one is written (recon database,
            # ledger): the other processes work while this one does.
            reading = (
                asyncio.create_task(_prepare(chunk, records, rules, report, tallies, times, resume))
                if chunk
                else None
            )
            prior, previous = previous, ((reading, offset) if reading is not None else None)
            if prior is not None:
                await _write(prior)
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
    report.mismatches_by_code = dict(tallies.codes)
    report.open_by_classification = dict(tallies.classes)
    report.psp_totals = {
        k: {"gross": v[0], "fee": v[1], "net": v[2], "rows": v[3]} for k, v in tallies.psp.items()
    }
    report.booked_totals = {k: {"gross": v[0], "fee": v[1]} for k, v in tallies.booked.items()}


def _row_mismatch(code: Code, row: SettlementRow) -> RowOutcome:
    outcome = RowOutcome()
    outcome.mismatches.append(
        Mismatch(code, CLASSIFICATION[code], row.balance_transaction_id, "", row.currency, row.gross_minor, (),
                 row.line)
    )  # fmt: skip
    return outcome


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
            outcomes.append(_row_mismatch(Code.UNMATCHED_ROW, row))
    return outcomes


_CLAIM = sa.text(
    """
    INSERT INTO settlement_rows (balance_transaction_id, row_digest, run_id, reporting_category, currency,
                                 gross_minor, fee_minor, our_reference, booking_id)
    SELECT u.id, u.digest, :run_id, u.category, u.currency, u.gross::bigint, u.fee::bigint,
           COALESCE(u.ref, ''), NULLIF(u.booking, '')
    FROM unnest(string_to_array(:ids, ','), string_to_array(:digests, ','), string_to_array(:categories, ','),
                string_to_array(:currencies, ','), string_to_array(:gross, ','), string_to_array(:fees, ','),
                string_to_array(:refs, ','), string_to_array(:bookings, ','))
         AS u(id, digest, category, currency, gross, fee, ref, booking)
    ON CONFLICT (balance_transaction_id) DO NOTHING
    RETURNING balance_transaction_id
    """
)
"""The chunk's claims in one statement. The columns travel as comma-joined text (ids, categories, currencies
and references never contain a comma: the parser allows ``[A-Za-z0-9_]`` ids, and our ids never have one;
one-element lists of an empty string split to no element, hence the COALESCE), which PostgreSQL splits itself: the driver's per-element array encoding cost more than the insert."""


async def _prepare(
    rows: list[SettlementRow],
    records: PaymentRecords,
    rules: Rules,
    report: RunReport,
    tallies: _Tallies,
    times: PhaseTimes,
    resume: _Resume,
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


async def _chunk(
    engine: AsyncEngine,
    rows: list[SettlementRow],
    outcomes: list[RowOutcome],
    booker: SettlementBooker,
    report: RunReport,
    fixer: OrderFixer | None,
    tallies: _Tallies,
    times: PhaseTimes,
    resume: _Resume,
) -> None:
    """Claim and book one chunk whose outcomes :func:`_prepare` computed: one recon transaction that claims the
    rows, stores the mismatches and writes the chunk's bookings (pending), then one ledger call."""
    if not rows:
        return
    last_line = rows[-1].line
    clock = time.perf_counter()

    # A booking id per currency and account the gross goes to (recon3's ``against``: a dispute's gross is not
    # the PSP's debt) of the chunk; a row names its booking in its claim, so the row and its money are written
    # in the same transaction and a row is booked at most once whatever happens afterwards.
    booking_ids: dict[tuple[str, Against], str] = {}
    first_of: dict[str, int] = {}
    claim_rows: list[tuple[SettlementRow, RowOutcome]] = []
    repeats: list[SettlementRow] = []
    for row, outcome in zip(rows, outcomes, strict=True):
        if row.balance_transaction_id in first_of:
            repeats.append(row)  # the same id twice inside this chunk
            continue
        first_of[row.balance_transaction_id] = len(claim_rows)
        claim_rows.append((row, outcome))
        if (
            outcome.booking is not None
            and (key := (row.currency, outcome.booking.against)) not in booking_ids
        ):
            booking_ids[key] = f"sb_{uuid.uuid4().hex}"
    digests = [_digest(r) for r, _ in claim_rows]
    params: dict[str, Any] = {
        "run_id": report.run_id,
        "ids": ",".join(r.balance_transaction_id for r, _ in claim_rows),
        "digests": ",".join(digests),
        "categories": ",".join(r.reporting_category for r, _ in claim_rows),
        "currencies": ",".join(r.currency for r, _ in claim_rows),
        "gross": ",".join(str(r.gross_minor) for r, _ in claim_rows),
        "fees": ",".join(str(r.fee_minor) for r, _ in claim_rows),
        # A row that matches but books nothing keeps its record too (a pay-out's transfer: the missing-pay-out
        # check looks for it).
        "refs": ",".join(o.booking.our_reference if o.booking else o.reference for _, o in claim_rows),
        "bookings": ",".join(
            booking_ids[(r.currency, o.booking.against)] if o.booking else "" for r, o in claim_rows
        ),
    }
    if params["refs"].count(",") != len(claim_rows) - 1:  # our ids have no comma; never split one wrongly
        raise RuntimeError("a reference of ours contains a comma")
    stored: list[tuple[Mismatch, str]] = []
    bookings: dict[tuple[str, Against], ChunkBooking] = {}
    async with engine.begin() as conn:
        new = set((await conn.execute(_CLAIM, params)).scalars())
        earlier: dict[str, tuple[str, str]] = {}
        taken = [r.balance_transaction_id for r, _ in claim_rows if r.balance_transaction_id not in new]
        if taken:
            result = await conn.execute(
                sa.select(t.rows.c.balance_transaction_id, t.rows.c.row_digest, t.rows.c.run_id).where(
                    t.rows.c.balance_transaction_id.in_(taken)
                )
            )
            earlier = {r.balance_transaction_id: (r.row_digest, r.run_id) for r in result}
        found: list[Mismatch] = []
        sums: dict[tuple[str, Against], list[int]] = {}  # (currency, against) → [gross, fee, rows]
        for (row, outcome), digest in zip(claim_rows, digests, strict=True):
            bt = row.balance_transaction_id
            if bt not in new:
                before = earlier.get(bt)
                if (
                    before is not None
                    and before[0] == digest
                    and before[1] != report.run_id
                    and before[1] not in resume.earlier_runs  # this file's own earlier line: a duplicate
                ):
                    # Counted by an earlier file with the same content (overlapping days).
                    report.already_counted += 1
                else:
                    found.extend(_row_mismatch(Code.DUPLICATE_ROW, row).mismatches)
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
            found.extend(_row_mismatch(Code.DUPLICATE_ROW, row).mismatches)
        stored = await _store_many(conn, report.run_id, found)
        await conn.execute(
            t.files.update().where(t.files.c.sha256 == report.file_sha256).values(committed_line=last_line)
        )
        for key, total in sums.items():
            bookings[key] = ChunkBooking(booking_ids[key], key[0], total[0], total[1], total[2], key[1])
        if bookings:
            await conn.execute(
                t.bookings.insert(),
                [
                    {"booking_id": b.booking_id, "run_id": report.run_id, "currency": b.currency,
                     "against": b.against.value, "gross_minor": b.gross_minor, "fee_minor": b.fee_minor,
                     "row_count": b.row_count, "state": "pending"}
                    for b in bookings.values()
                ],
            )  # fmt: skip
    times.classify += time.perf_counter() - clock
    clock = time.perf_counter()
    if bookings:
        await post_bookings(engine, booker, [b.booking_id for b in bookings.values()], wait=True)
    times.book += time.perf_counter() - clock
    # After the chunk's transaction: an auto-fix calls another service and must not hold the chunk's locks.
    for m, mismatch_id in stored:
        tallies.codes[m.code.value] += 1
        if m.classification is Classification.AUTO_FIXABLE and await _auto_fix(engine, fixer, m, mismatch_id):
            report.auto_fixed += 1
        else:
            tallies.classes[m.classification.value] += 1


async def _store_many(
    conn: AsyncConnection, run_id: str, found: list[Mismatch]
) -> list[tuple[Mismatch, str]]:
    """The chunk's mismatches and their ``opened`` actions, two multi-row inserts."""
    if not found:
        return []
    stored = [(m, f"mm_{uuid.uuid4().hex}") for m in found]
    await conn.execute(
        t.mismatches.insert(),
        [
            {"mismatch_id": mid, "run_id": run_id, "code": m.code.value, "classification": m.classification.value,
             "state": "open", "balance_transaction_id": m.balance_transaction_id, "our_reference": m.our_reference,
             "currency": m.currency, "amount_minor": m.amount_minor,
             "differences": [{"field": d.field, "ours": d.ours, "theirs": d.theirs} for d in m.differences],
             "line": m.line}
            for m, mid in stored
        ],
    )  # fmt: skip
    await conn.execute(
        t.actions.insert(),
        [
            {"mismatch_id": mid, "actor": "recon", "action": "opened", "detail": f"{m.code.value} in run {run_id}"}
            for m, mid in stored
        ],
    )  # fmt: skip
    return stored


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


MISSING_CHUNK = 1000
"""Our orders are checked against the counted rows a page at a time, so a busy day never sits in memory."""


async def _missing(
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
                await _store(conn, report.run_id, m)
        report.pending += pending
        for m in found:
            report.mismatches_by_code[m.code.value] = report.mismatches_by_code.get(m.code.value, 0) + 1
            key = m.classification.value
            report.open_by_classification[key] = report.open_by_classification.get(key, 0) + 1
        chunk.clear()

    async for order in records.captured_orders(*window):
        chunk.append(order)
        if len(chunk) >= MISSING_CHUNK:
            await check()
    if chunk:
        await check()
