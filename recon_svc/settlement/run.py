"""One reconciliation run of a settlement file: validate, match, classify, book, record, report.

Two streaming passes keep memory flat and make a bad file book nothing:

1. validate every row and hash the bytes, spooling each good row's values to a temporary file (spool.py); a
   refused file or any malformed row fails the run with the errors (line and reason), and a file whose SHA-256
   was ingested before is recognised and changes nothing (lifecycle.py);
2. a chunk of rows at a time (pipeline.py): read our records for the chunk in batched calls, classify the
   differences in memory, claim the rows (claims.py), store the mismatches (mismatches.py) and write the chunk's
   bookings in one recon transaction, then book them in the ledger in one call (bookings.py: one transaction per
   currency, idempotent by booking id). A row is claimed once, with the booking that carries its money, so
   nothing is booked twice; a run that dies mid-file is resumed by running the same file again.

Then the checks that look at our side (:func:`_after_the_rows`): our orders and pay-outs no file has reached.

A balance transaction already counted by an earlier file (overlapping days) with the same content is skipped;
with other content, or twice in one file, it is a DUPLICATE_ROW. Transfers are matched to our pay-outs (and book
nothing: the pay-out booked itself). Disputes, refund failures, transfer reversals, the PSP's payouts, fees and
adjustments are matched in categories.py; categories of products we do not use become UNMATCHED_ROW for a
person, never silently dropped.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, cast

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from recon_svc.settlement.bookings import post_bookings
from recon_svc.settlement.classify import Rules
from recon_svc.settlement.lifecycle import Resume, claim_file, file_lock, finish_run, start_run
from recon_svc.settlement.mismatches import store
from recon_svc.settlement.missing import missing_records
from recon_svc.settlement.missing_orders import missing_orders
from recon_svc.settlement.parse import SettlementFileRefused, SettlementParser
from recon_svc.settlement.parse_ranges import copy_and_hash, cuts, estimated_rows
from recon_svc.settlement.pipeline import CHUNK_ROWS, match_and_book
from recon_svc.settlement.records import OrderFixer, PaymentRecords, SettlementBooker
from recon_svc.settlement.report import PhaseTimes, RunReport
from recon_svc.settlement.spool import MAX_REPORTED_ROW_ERRORS, validate
from recon_svc.settlement.workers import Block, WorkerPool, WorkerSetup, match_and_book_in_workers

__all__ = [
    "CHUNK_ROWS",
    "MAX_REPORTED_ROW_ERRORS",
    "PhaseTimes",
    "RunReport",
    "WorkerPool",
    "WorkerSetup",
    "post_bookings",
    "reconcile_file",
]

log = structlog.get_logger(__name__)


@dataclass
class _Run:
    """One run's collaborators and settings, handed from step to step."""

    engine: AsyncEngine
    records: PaymentRecords
    booker: SettlementBooker
    rules: Rules
    report: RunReport
    now: dt.datetime
    progress: Callable[[int], None] | None
    expected_window: tuple[dt.datetime, dt.datetime] | None
    fixer: OrderFixer | None
    times: PhaseTimes
    chunk_rows: int
    workers: int = 1
    worker_setup: WorkerSetup | None = None
    workers_min_rows: int = 0
    first: dt.datetime | None = None
    last: dt.datetime | None = None


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
    workers: int = 1,
    worker_setup: WorkerSetup | None = None,
    workers_min_rows: int = 0,
    worker_pool: WorkerPool | None = None,
) -> RunReport:
    """Reconcile one settlement file, read once (the second pass reads the spooled rows). ``progress`` gets byte
    offsets of the file.

    ``expected_window``: our orders captured in it should be in this or an earlier file; each that is not is
    pending until ``rules.grace`` has passed since its creation, then MISSING_FROM_PSP.

    ``workers`` above 1 (with ``worker_setup``, how a worker process opens its own connections) runs the
    first and second passes on that many processes (workers.py) when the file has at least ``workers_min_rows``
    rows; ``worker_pool``, processes the caller keeps between runs, is used instead of spawning them (its size
    and setup then stand for ``workers`` and ``worker_setup``);
    ``progress`` then hears only the end of it.
    """
    if worker_pool is not None:
        workers, worker_setup = worker_pool.workers, worker_pool.setup
    if workers > 1 and worker_setup is None:
        raise ValueError("workers above 1 need a worker_setup")
    now = now or dt.datetime.now(dt.UTC)
    report = RunReport(run_id=f"rr_{uuid.uuid4().hex}", state="RUNNING")
    run = _Run(engine, records, booker, rules, report, now, progress, expected_window, fixer,
               times if times is not None else PhaseTimes(), chunk_rows, workers, worker_setup,
               workers_min_rows)  # fmt: skip
    await start_run(engine, report.run_id, now)
    if workers > 1 and worker_setup is not None:
        with tempfile.TemporaryDirectory(prefix="recon-run-") as folder:
            return await _run_in_workers(run, worker_setup, source, Path(folder), worker_pool)
    # Named: worker processes open it by its path.
    with tempfile.NamedTemporaryFile(prefix="recon-spool-") as spool:
        return await _run(run, source, cast(BinaryIO, spool))  # the wrapper delegates to its file object


async def _end(
    run: _Run, state: str, *, error: str = "", rows_read: int | None = None, completes_file: bool = False
) -> RunReport:
    report = run.report
    report.state = state
    if error:
        report.error = error
    if rows_read is not None:
        report.rows_read = rows_read
    await finish_run(run.engine, report, run.first, run.last, completes_file=completes_file)
    return report


async def _run(run: _Run, source: BinaryIO, spool: BinaryIO) -> RunReport:
    """The first pass in this process; the second here too, or on workers for a file of enough rows."""
    report = run.report
    clock = time.perf_counter()
    offsets: list[int] = []
    try:
        run.first, run.last = validate(source, report, spool, run.chunk_rows, offsets)
    except SettlementFileRefused as exc:
        return await _refused(run, exc)
    if report.row_error_count:
        return await _malformed(run)
    run.times.parse += time.perf_counter() - clock
    size = source.tell()
    spooled = spool.tell()

    async def second_pass(resume: Resume) -> None:
        spool.seek(0)

        def progress_in_source(offset: int) -> None:
            if run.progress is not None:  # the spool's position, as a share of the file's bytes
                run.progress(size if not spooled else offset * size // spooled)

        if run.workers > 1 and run.worker_setup is not None and report.rows_read >= run.workers_min_rows:
            log.info("settlement run on worker processes", run_id=report.run_id, workers=run.workers,
                     rows=report.rows_read)  # fmt: skip
            spool.flush()
            await match_and_book_in_workers(run.worker_setup, run.workers, spool.name, offsets, run.rules,
                                            report, run.times, resume)  # fmt: skip
            progress_in_source(spooled)
        else:
            await match_and_book(run.engine, spool, run.records, run.booker, run.rules, report,
                                 progress_in_source, run.fixer, run.times, resume)  # fmt: skip

    return await _locked_and_reconciled(run, size, second_pass)


async def _run_in_workers(
    run: _Run, setup: WorkerSetup, source: BinaryIO, folder: Path, kept: WorkerPool | None
) -> RunReport:
    """Both passes on worker processes (workers.py): the file copied and hashed here, validated and spooled by
    byte ranges in the workers. A file of fewer rows than ``workers_min_rows`` (estimated from its size) runs in
    this process, where starting workers would cost more than they save."""
    report = run.report
    clock = time.perf_counter()
    path = folder / "settlement.csv"
    with path.open("w+b") as copy:
        copied = copy_and_hash(source, copy)
        copy.seek(0)
        if estimated_rows(copied) < run.workers_min_rows:
            with (folder / "spool").open("w+b") as spool:
                return await _run(run, copy, spool)
        with contextlib.nullcontext(kept) if kept is not None else WorkerPool(setup, run.workers) as pool:
            try:
                header = SettlementParser(copy).header()
            except SettlementFileRefused as exc:
                return await _refused(run, exc)
            log.info("settlement run on worker processes", run_id=report.run_id, workers=run.workers,
                     bytes=copied.size)  # fmt: skip
            starts = cuts(copy, copied, run.workers)
            ranges = await pool.first_pass(
                str(path), starts, copied.size, header, folder, run.chunk_rows, report
            )
            if ranges is None:
                # A range was refused: the file validated whole here, so a refusal (or a cut a stray quote
                # misplaced) reads exactly as in a one-process run.
                log.info(
                    "settlement file validated in one process after a refused range", run_id=report.run_id
                )
                copy.seek(0)
                with (folder / "spool").open("w+b") as spool:
                    offsets: list[int] = []
                    try:
                        run.first, run.last = validate(copy, report, spool, run.chunk_rows, offsets)
                    except SettlementFileRefused as exc:
                        return await _refused(run, exc)
                blocks: list[Block] = [(str(folder / "spool"), offset, 0) for offset in offsets]
            else:
                blocks, first, last = ranges
                report.file_sha256 = copied.sha256
                if first is not None and last is not None:
                    run.first = dt.datetime.fromtimestamp(first, dt.UTC)
                    run.last = dt.datetime.fromtimestamp(last, dt.UTC)
            if report.row_error_count:
                return await _malformed(run)
            run.times.parse += time.perf_counter() - clock

            async def second_pass(resume: Resume) -> None:
                await pool.second_pass(blocks, run.rules, report, run.times, resume)
                if run.progress is not None:
                    run.progress(copied.size)

            return await _locked_and_reconciled(run, copied.size, second_pass)


async def _refused(run: _Run, exc: SettlementFileRefused) -> RunReport:
    log.error("settlement file refused", run_id=run.report.run_id, reason=exc.reason, detail=exc.message)
    return await _end(run, "FAILED", error=exc.message)


async def _malformed(run: _Run) -> RunReport:
    report = run.report
    log.error("settlement file has malformed rows", run_id=report.run_id, rows=report.row_error_count)
    return await _end(
        run, "FAILED", error=f"{report.row_error_count} malformed row(s); nothing was booked", rows_read=0
    )


async def _locked_and_reconciled(
    run: _Run, size: int, second_pass: Callable[[Resume], Awaitable[None]]
) -> RunReport:
    """The validated file claimed under its lock, its rows reconciled (``second_pass``), the run ended."""
    report = run.report
    async with file_lock(run.engine, report.file_sha256) as taken:
        if not taken:
            return await _end(run, "DUPLICATE_FILE", rows_read=0,
                              error="the same file is being reconciled by another run right now")  # fmt: skip
        resume = await claim_file(run.engine, report, size)
        if resume is None:
            return await _end(run, "DUPLICATE_FILE", rows_read=0)
        # Bookings an interrupted run wrote but did not post (a crash between its chunk's commit and the
        # ledger's answer) are posted first, under their own keys: the ledger replays any it had already posted.
        await post_bookings(run.engine, run.booker, None, wait=False)
        await second_pass(resume)
        await _after_the_rows(run)
        await _end(run, "SUCCEEDED", completes_file=True)
    if report.open_by_classification.get("unclassified"):
        log.error("settlement run left unclassified mismatches", run_id=report.run_id,
                  count=report.open_by_classification["unclassified"])  # fmt: skip
    return report


async def _after_the_rows(run: _Run) -> None:
    """The checks of a run that look at our side once every row is counted; each adds its mismatches to the
    report (``report.count_open``). A new end-of-run check goes here."""
    if run.expected_window is None:
        return
    report = run.report
    await missing_orders(run.engine, run.records, run.rules, report, run.expected_window, run.now)
    found, pending = await missing_records(
        run.engine, run.records, run.rules, run.expected_window, run.now, report.run_id, store
    )
    report.pending += pending
    for m in found:
        report.count_open(m.code.value, m.classification.value)
