"""The second pass on several processes: each worker takes every n-th spooled block (disjoint chunks), reads our
records and classifies in parallel with the others, and the chunks' recon transactions commit in file order
(a turn passed between the workers), so the file's ``committed_line`` means what it means for one process and
an interrupted run resumes the same way. The parent merges the workers' counts and tallies.

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
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from recon_svc.config import ReconSettings
from recon_svc.settlement.classify import Rules
from recon_svc.settlement.lifecycle import Resume
from recon_svc.settlement.pipeline import prepare, write_chunk
from recon_svc.settlement.records import GrpcPaymentRecords, GrpcSettlementBooker, OrderFixer
from recon_svc.settlement.report import PhaseTimes, RunReport, Tallies
from recon_svc.settlement.spool import read_block
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


def _work(setup: WorkerSetup, spool_path: str, blocks: Sequence[tuple[int, int]], rules: Rules, run_id: str,
          file_sha256: str, resume: Resume) -> WorkerResult:  # fmt: skip
    try:
        return asyncio.run(_work_async(setup, spool_path, blocks, rules, run_id, file_sha256, resume))
    except BaseException as exc:
        _fail()
        raise WorkerFailed.of(exc) from None


async def _work_async(setup: WorkerSetup, spool_path: str, blocks: Sequence[tuple[int, int]], rules: Rules,
                      run_id: str, file_sha256: str, resume: Resume) -> WorkerResult:  # fmt: skip
    result = WorkerResult()
    report = RunReport(run_id=run_id, state="RUNNING", file_sha256=file_sha256)
    loop = asyncio.get_running_loop()
    async with setup.open() as (engine, records, booker):
        fixer: OrderFixer | None = records if setup.auto_fix else None
        with open(spool_path, "rb") as spool:  # noqa: ASYNC230  (a local temporary file, one block per chunk)
            for index, offset in blocks:
                spool.seek(offset)
                rows = read_block(spool)
                rows, outcomes = await prepare(
                    rows, records, rules, report, result.tallies, result.times, resume
                )
                await loop.run_in_executor(None, _wait_turn, index)
                await write_chunk(engine, rows, outcomes, booker, report, fixer, result.tallies, result.times,
                                  resume, on_committed=partial(_pass_turn, index))  # fmt: skip
                _pass_turn(index)  # a chunk with nothing left to write (resumed) commits nothing
    result.matched, result.booked = report.matched, report.booked
    result.already_counted, result.auto_fixed = report.already_counted, report.auto_fixed
    return result


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
    """The second pass over the spooled blocks (their offsets) on ``workers`` processes; the counts and tallies
    end in ``report`` as :func:`~recon_svc.settlement.pipeline.match_and_book`'s do."""
    context = multiprocessing.get_context("spawn")
    turn, abort, changed = context.Value("q", 0), context.Value("b", 0), context.Condition()
    loop = asyncio.get_running_loop()
    with ProcessPoolExecutor(
        workers, mp_context=context, initializer=_init, initargs=(turn, abort, changed)
    ) as pool:
        shares = [[(i, offsets[i]) for i in range(k, len(offsets), workers)] for k in range(workers)]
        try:
            results = await asyncio.gather(
                *(
                    loop.run_in_executor(
                        pool,
                        _work,
                        setup,
                        spool_path,
                        share,
                        rules,
                        report.run_id,
                        report.file_sha256,
                        resume,
                    )
                    for share in shares
                    if share
                )
            )
        except WorkerFailed as failed:
            raise failed.rebuilt() from None
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
