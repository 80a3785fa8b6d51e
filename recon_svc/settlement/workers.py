"""Both passes on several processes (:class:`WorkerPool`, one set of spawned processes for the run).

The first pass: each worker validates and spools one byte range of the run's copy of the file (parse_ranges.py
cuts it at record ends); the parent hashed the whole file while copying it, and combines the ranges' counts,
row errors (their line numbers shifted by the lines before the range) and first and last timestamps. A range
refused as a file (a cut misplaced by a stray quote, or a file really broken past its header) makes the parent
validate the whole file itself, so the refusal and its line are exactly those of a run in one process.

The second pass: each worker takes every n-th spooled block (disjoint chunks), reads our records and classifies
in parallel with the others, and the chunks' recon transactions commit in file order (a turn passed between the
workers), so the file's ``committed_line`` means what it means for one process and an interrupted run resumes the
same way. The parent merges the workers' counts and tallies.

A worker is a spawned process (gRPC must not be forked) that opens its own database engine and channels from a
:class:`WorkerSetup`; memory stays bounded per worker (one chunk in hand).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import multiprocessing
import multiprocessing.synchronize
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, BinaryIO

from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from recon_svc.config import ReconSettings
from recon_svc.settlement.classify import Rules
from recon_svc.settlement.lifecycle import Resume
from recon_svc.settlement.parse import SettlementFileRefused, SettlementParser
from recon_svc.settlement.pipeline import prepare, write_chunk
from recon_svc.settlement.records import GrpcPaymentRecords, GrpcSettlementBooker, OrderFixer
from recon_svc.settlement.report import PhaseTimes, RunReport, Tallies
from recon_svc.settlement.spool import MAX_REPORTED_ROW_ERRORS, read_records, spool_rows
from svckit.errors import DomainError
from svckit.gen.ledger.v1 import ledger_service_pb2_grpc as lpb_grpc
from svckit.gen.payments.v1 import payment_service_pb2_grpc as ppb_grpc
from svckit.gen.payments.v1 import payout_service_pb2_grpc as popb_grpc
from svckit.tls import INSECURE, identity_files, security_for

TURN_POLL_SECONDS = 1.0
"""How often a worker waiting for its turn checks whether the run was aborted (a failed worker)."""


@dataclass(frozen=True)
class WorkerSetup:
    """How a worker process reaches recon's database and the services, as the ``recon`` identity (plain values:
    it is sent to the spawned process)."""

    database_url: str = field(repr=False)  # may carry the database password: never in a log or traceback
    payment_address: str
    ledger_address: str
    ca_file: str | None  # None, with the certificate and key: plaintext gRPC (GRPC_INSECURE, debugging only)
    cert_file: str | None
    key_file: str | None
    deadline_seconds: float = 120.0
    auto_fix: bool = True

    @classmethod
    def from_settings(cls, settings: ReconSettings) -> WorkerSetup:
        """The workers of a service's or the CLI's run reach what the process reaches, as the same identity."""
        files = security_for(settings).files
        return cls(
            database_url=settings.sqlalchemy_url(),
            payment_address=settings.payment_addr,
            ledger_address=settings.ledger_addr,
            ca_file=None if files is None else str(files.ca_file),
            cert_file=None if files is None else str(files.cert_file),
            key_file=None if files is None else str(files.key_file),
            deadline_seconds=settings.upstream_deadline_seconds,
            auto_fix=settings.settlement_auto_fix,
        )

    @contextlib.asynccontextmanager
    async def open(self) -> AsyncIterator[tuple[AsyncEngine, GrpcPaymentRecords, GrpcSettlementBooker]]:
        if self.ca_file is None or self.cert_file is None or self.key_file is None:
            security = INSECURE
        else:
            security = identity_files(Path(self.ca_file), Path(self.cert_file), Path(self.key_file))
        engine = create_async_engine(self.database_url, pool_size=2)
        pay = security.aio_channel(self.payment_address)
        ledger = security.aio_channel(self.ledger_address)
        try:
            records = GrpcPaymentRecords(
                ppb_grpc.PaymentServiceStub(pay), self.deadline_seconds, popb_grpc.PayoutServiceStub(pay)
            )
            yield (
                engine,
                records,
                GrpcSettlementBooker(lpb_grpc.LedgerServiceStub(ledger), self.deadline_seconds),
            )
        finally:
            await pay.close()
            await ledger.close()
            await engine.dispose()


@dataclass
class WorkerResult:
    matched: int = 0
    booked: int = 0
    already_counted: int = 0
    auto_fixed: int = 0
    tallies: Tallies = field(default_factory=Tallies)
    times: PhaseTimes = field(default_factory=PhaseTimes)


# The turn and the abort flag reach the workers at their start (synchronisation objects cannot be pickled later).
_turn: Any = None
_abort: Any = None
_changed: multiprocessing.synchronize.Condition | None = None


def _init(turn: Any, abort: Any, changed: multiprocessing.synchronize.Condition) -> None:
    global _turn, _abort, _changed
    _turn, _abort, _changed = turn, abort, changed


def _wait_turn(index: int) -> None:
    assert _changed is not None
    with _changed:
        while _turn.value != index:
            if _abort.value:
                raise RuntimeError("another settlement worker failed; this one stops")
            _changed.wait(TURN_POLL_SECONDS)


def _pass_turn(index: int) -> None:
    assert _changed is not None
    with _changed:
        if _turn.value == index:
            _turn.value = index + 1
            _changed.notify_all()


def _fail() -> None:
    assert _changed is not None
    with _changed:
        _abort.value = 1
        _changed.notify_all()


class WorkerFailed(Exception):
    """A worker's failure as plain values: the parent gets it through pickle, which cannot rebuild a
    DomainError (its constructor takes more than the message), and raises the original kind again."""

    def __init__(self, module: str, name: str, reason: str, message: str, metadata: dict[str, str]) -> None:
        super().__init__(module, name, reason, message, metadata)

    @classmethod
    def of(cls, exc: BaseException) -> WorkerFailed:
        if isinstance(exc, DomainError):
            kind = type(exc)
            return cls(kind.__module__, kind.__qualname__, exc.reason, exc.message, dict(exc.metadata))
        return cls("", type(exc).__name__, "", str(exc), {})

    def rebuilt(self) -> Exception:
        module, name, reason, message, metadata = self.args
        kind = getattr(importlib.import_module(module), name, None) if module else None
        if isinstance(kind, type) and issubclass(kind, DomainError):
            error = kind.__new__(kind)
            Exception.__init__(error, message)
            error.reason, error.message, error.metadata = reason, message, metadata
            return error
        return RuntimeError(f"a settlement worker failed: {name}: {message}")


Block = tuple[str, int, int]
"""A spooled block: its spool file, its offset there, and the lines of the file before its range."""


@dataclass
class RangeResult:
    """One range's first pass, as plain values (it comes back through pickle)."""

    rows_read: int = 0
    row_error_count: int = 0
    row_errors: list[dict[str, Any]] = field(default_factory=list)
    """The first ones, their lines counted from the range's first line."""
    first: int | None = None
    last: int | None = None
    offsets: list[int] = field(default_factory=list)
    lines: int = 0
    """The range's physical lines: the next range's line numbers start after them."""
    refused: bool = False


def _validate_range(path: str, start: int, end: int, header: list[str] | None, spool_path: str,
                    chunk_rows: int) -> RangeResult:  # fmt: skip
    """Validate and spool one range of the file (``header`` None: the first range, which starts with it)."""
    try:
        report = RunReport(run_id="", state="RUNNING")
        result = RangeResult()
        with open(path, "rb") as source, open(spool_path, "wb") as spool:
            source.seek(start)
            parser = SettlementParser(source, header=header, limit=end - start)
            try:
                result.first, result.last = spool_rows(parser, report, spool, chunk_rows, result.offsets)
            except SettlementFileRefused:
                return RangeResult(refused=True)
        result.rows_read, result.row_error_count = report.rows_read, report.row_error_count
        result.row_errors, result.lines = report.row_errors, parser.lines_read
        return result
    except BaseException as exc:
        raise WorkerFailed.of(exc) from None


def _work(setup: WorkerSetup, blocks: Sequence[tuple[int, Block]], *, rules: Rules, run_id: str, file_sha256: str,
          resume: Resume) -> WorkerResult:  # fmt: skip
    try:
        return asyncio.run(_work_async(setup, blocks, rules, run_id, file_sha256, resume))
    except BaseException as exc:
        _fail()
        raise WorkerFailed.of(exc) from None


async def _work_async(setup: WorkerSetup, blocks: Sequence[tuple[int, Block]], rules: Rules, run_id: str,
                      file_sha256: str, resume: Resume) -> WorkerResult:  # fmt: skip
    result = WorkerResult()
    report = RunReport(run_id=run_id, state="RUNNING", file_sha256=file_sha256)
    loop = asyncio.get_running_loop()
    async with setup.open() as (engine, records, booker):
        fixer: OrderFixer | None = records if setup.auto_fix else None
        spools: dict[str, BinaryIO] = {}
        try:
            for index, (spool_path, offset, line_offset) in blocks:
                spool = spools.get(spool_path)
                if spool is None:  # a local temporary file, one block per chunk
                    spool = spools[spool_path] = open(spool_path, "rb")  # noqa: ASYNC230, SIM115
                spool.seek(offset)
                rows = read_records(spool, line_offset)
                rows, outcomes = await prepare(
                    rows, records, rules, report, result.tallies, result.times, resume
                )
                await loop.run_in_executor(None, _wait_turn, index)
                await write_chunk(engine, rows, outcomes, booker, report, fixer, result.tallies, result.times,
                                  resume, on_committed=partial(_pass_turn, index))  # fmt: skip
                _pass_turn(index)  # a chunk with nothing left to write (resumed) commits nothing
        finally:
            for spool in spools.values():
                spool.close()
    result.matched, result.booked = report.matched, report.booked
    result.already_counted, result.auto_fixed = report.already_counted, report.auto_fixed
    return result


class WorkerPool:
    """The run's worker processes, spawned once for both passes (a spawn imports gRPC and SQLAlchemy: 1-2 CPU
    seconds each). Use as a context manager; the processes start at once, while the parent copies the file."""

    def __init__(self, setup: WorkerSetup, workers: int) -> None:
        self.setup = setup
        self.workers = workers
        context = multiprocessing.get_context("spawn")
        self._turn, self._abort, changed = context.Value("q", 0), context.Value("b", 0), context.Condition()
        self._pool = ProcessPoolExecutor(
            workers, mp_context=context, initializer=_init, initargs=(self._turn, self._abort, changed)
        )
        for _ in range(workers):  # start them now: the executor would spawn them only when work comes
            self._pool.submit(int)

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    async def first_pass(self, path: str, starts: Sequence[int], end: int, header: list[str], spool_dir: Path,
                         chunk_rows: int, report: RunReport) -> tuple[list[Block], int | None, int | None] | None:  # fmt: skip
        """Validate and spool the ranges of the file at ``path`` that begin at ``starts``; their counts and row
        errors go into ``report`` (lines of the whole file). The spooled blocks in file order and the first and
        last ``created_utc``; None when a range was refused (the caller then validates the file whole)."""
        loop = asyncio.get_running_loop()
        bounds = [*starts, end]
        spools = [str(spool_dir / f"spool-{k}") for k in range(len(starts))]
        tasks = []
        for k in range(len(starts)):
            names = None if k == 0 else header  # the first range reads the header itself
            tasks.append(loop.run_in_executor(self._pool, _validate_range, path, bounds[k], bounds[k + 1], names,
                                              spools[k], chunk_rows))  # fmt: skip
        try:
            results = await asyncio.gather(*tasks)
        except WorkerFailed as failed:
            raise failed.rebuilt() from None
        if any(r.refused for r in results):
            return None
        blocks: list[Block] = []
        lines = 0
        firsts = [r.first for r in results if r.first is not None]
        lasts = [r.last for r in results if r.last is not None]
        for spool, r in zip(spools, results, strict=True):
            report.rows_read += r.rows_read
            report.row_error_count += r.row_error_count
            for error in r.row_errors[: MAX_REPORTED_ROW_ERRORS - len(report.row_errors)]:
                report.row_errors.append({**error, "line": error["line"] + lines})
            blocks.extend((spool, offset, lines) for offset in r.offsets)
            lines += r.lines
        return blocks, min(firsts, default=None), max(lasts, default=None)

    async def second_pass(self, blocks: Sequence[Block], rules: Rules, report: RunReport, times: PhaseTimes,
                          resume: Resume) -> None:  # fmt: skip
        """The second pass over the spooled blocks; the counts and tallies end in ``report`` as
        :func:`~recon_svc.settlement.pipeline.match_and_book`'s do."""
        self._turn.value, self._abort.value = 0, 0
        loop = asyncio.get_running_loop()
        workers = self.workers
        shares = [[(i, blocks[i]) for i in range(k, len(blocks), workers)] for k in range(workers)]
        work = partial(_work, self.setup, rules=rules, run_id=report.run_id, file_sha256=report.file_sha256,
                       resume=resume)  # fmt: skip
        tasks = [loop.run_in_executor(self._pool, work, share) for share in shares if share]
        try:
            results = await asyncio.gather(*tasks)
        except WorkerFailed as failed:
            raise failed.rebuilt() from None
        _merge(results, report, times)


async def match_and_book_in_workers(
    setup: WorkerSetup,
    workers: int,
    spool_path: str,
    offsets: Sequence[int],
    rules: Rules,
    report: RunReport,
    times: PhaseTimes,
    resume: Resume,
) -> None:
    """The second pass alone on ``workers`` processes over one spool (the first pass ran in the caller)."""
    with WorkerPool(setup, workers) as pool:
        await pool.second_pass([(spool_path, offset, 0) for offset in offsets], rules, report, times, resume)


def _merge(results: Sequence[WorkerResult], report: RunReport, times: PhaseTimes) -> None:
    tallies = Tallies()
    for r in results:
        report.matched += r.matched
        report.booked += r.booked
        report.already_counted += r.already_counted
        report.auto_fixed += r.auto_fixed
        tallies.codes.update(r.tallies.codes)
        tallies.classes.update(r.tallies.classes)
        for key, values in r.tallies.psp.items():
            into = tallies.psp.setdefault(key, [0, 0, 0, 0])
            for i, v in enumerate(values):
                into[i] += v
        for key, values in r.tallies.booked.items():
            into = tallies.booked.setdefault(key, [0, 0])
            for i, v in enumerate(values):
                into[i] += v
        for name, seconds in vars(r.times).items():
            setattr(times, name, getattr(times, name) + seconds)
    tallies.into(report)
