"""A run's record and its file's claim: started, the file claimed (or recognised, or taken over from an
interrupted run), locked for the run's lifetime, completed, finished and counted."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
import structlog
from prometheus_client import Counter
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from recon_svc.settlement import tables as t
from recon_svc.settlement.report import RunReport

log = structlog.get_logger(__name__)

RUNS = Counter("recon_settlement_runs_total", "Settlement runs by final state", ["state"])
UNCLASSIFIED = Counter(
    "recon_settlement_unclassified_total", "Unclassified mismatches found by settlement runs"
)


async def start_run(engine: AsyncEngine, run_id: str, now: dt.datetime) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            t.runs.insert().values(
                run_id=run_id, state="RUNNING", interval_start=now, interval_end=now, kind="SETTLEMENT_FILE"
            )
        )


async def finish_run(
    engine: AsyncEngine,
    report: RunReport,
    first: dt.datetime | None,
    last: dt.datetime | None,
    *,
    completes_file: bool = False,
) -> None:
    """Store the run's final state and report, and count it in the metrics. ``completes_file``: every row
    of the file is reconciled, so running it again is a DUPLICATE_FILE from now on; marked in the same
    transaction as the run's end, so a run that dies between the two cannot leave its file complete and
    itself RUNNING (chaos seed 861)."""
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
        if completes_file:
            await conn.execute(
                t.files.update()
                .where(t.files.c.sha256 == report.file_sha256)
                .values(completed_at=sa.func.now())
            )
    RUNS.labels(report.state).inc()
    UNCLASSIFIED.inc(report.open_by_classification.get("unclassified", 0))


@dataclass(frozen=True)
class Resume:
    """Where an interrupted run of the same file stopped: its last committed line and the runs that claimed."""

    committed_line: int = 0
    earlier_runs: frozenset[str] = frozenset()


@contextlib.asynccontextmanager
async def file_lock(engine: AsyncEngine, file_sha256: str) -> AsyncIterator[bool]:
    """A session advisory lock on the file for the whole run (True when taken): a second run of the same file
    while this one is alive gets False, and a crashed run's lock went with its session, so its file can be
    resumed."""
    async with engine.connect() as lock:
        key = int(file_sha256[:15], 16)
        taken = bool((await lock.execute(sa.select(sa.func.pg_try_advisory_lock(key)))).scalar())
        await lock.commit()  # a session lock outlives the transaction; no transaction stays open for the run
        try:
            yield taken
        finally:
            if taken:
                await lock.execute(sa.select(sa.func.pg_advisory_unlock(key)))
                await lock.commit()


async def claim_file(engine: AsyncEngine, report: RunReport, size: int) -> Resume | None:
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
            return Resume()
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
        resume = Resume(earlier.committed_line, frozenset(runs) | {earlier.run_id})
    log.warning("resuming an interrupted settlement file", run_id=report.run_id, interrupted=earlier.run_id,
                after_line=resume.committed_line)  # fmt: skip
    return resume
