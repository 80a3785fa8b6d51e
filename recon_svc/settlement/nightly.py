"""The nightly settlement run: each night, at a configured local time, the previous day's PSP report.

Every ``nightly_tick_seconds`` the scheduler looks at the last ``nightly_catch_up_days`` days. Day D (a UTC
day, as the PSP's report interval is) is due once the local time ``nightly_at`` of day D+1 in
``timezone`` has come and D has ended in UTC (a zone east of UTC reaches its night before D is over). A day
missed while the service was down is therefore caught up by the first tick after a start. A failed day is tried
again after a back-off that doubles with each attempt (from ``nightly_retry_seconds`` up to
``nightly_retry_max_seconds``): a PSP that has no data for the day yet, or is down, is not asked every tick.

Safe with several replicas: a day is claimed by one row per (PSP account, day) in ``recon_nightly_days``, taken
with one INSERT ... ON CONFLICT DO UPDATE that only succeeds on a new, failed or abandoned (lease expired) day,
so of two replicas ticking at once exactly one runs it; a day done is never run again by the scheduler. The run
itself is idempotent too (a file already reconciled ends DUPLICATE_FILE; each row is claimed once).

Failures are logged as errors and counted (``recon_nightly_runs_total{outcome="failed"}``): what an alert
watches. Local times come from the IANA database through :mod:`zoneinfo`; a time that a DST change skips
(02:30 on a spring-forward night) runs at the same UTC instant an hour later on the wall clock, and a time
that happens twice (autumn) runs at its first occurrence.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import socket
from collections.abc import Awaitable, Callable
from typing import IO, TYPE_CHECKING
from zoneinfo import ZoneInfo

import sqlalchemy as sa
import structlog
from prometheus_client import Counter
from sqlalchemy.ext.asyncio import AsyncEngine

from recon_svc.record_checks import check_settlement_day
from recon_svc.settlement.fetch import day_interval, fetch_report
from recon_svc.settlement.run import RunReport, WorkerSetup, reconcile_file
from svckit.runtime import stop_if_cancelled

if TYPE_CHECKING:
    from recon_svc.settlement.grpc import SettlementDeps

log = structlog.get_logger(__name__)

NIGHTLY_RUNS = Counter("recon_nightly_runs_total", "Nightly settlement runs by outcome", ["outcome"])

RunDay = Callable[[dt.date], Awaitable[RunReport]]
"""Fetches the PSP's report of one UTC day and reconciles it."""


async def reconcile_day(deps: SettlementDeps, day: dt.date) -> RunReport:
    """Fetch the PSP's report of UTC day ``day`` (Reporting API) and reconcile it, expecting our orders of that
    day in it (or in an earlier file)."""
    s = deps.settings
    # The SDK is synchronous: fetched in a thread so the server keeps answering meanwhile.
    source: IO[bytes] = await asyncio.to_thread(
        fetch_report,
        s.psp_base_url,
        s.psp_api_key.get_secret_value(),
        day,
        poll_seconds=s.settlement_report_poll_seconds,
        attempts=s.settlement_report_poll_attempts,
    )
    start, end = day_interval(day)
    window = (dt.datetime.fromtimestamp(start, dt.UTC), dt.datetime.fromtimestamp(end, dt.UTC))
    with source:
        report = await reconcile_file(
            deps.engine,
            source,  # type: ignore[arg-type]  # a SpooledTemporaryFile is a binary file in all but its type
            deps.records,
            deps.booker,
            deps.rules,
            expected_window=window,
            fixer=deps.records if s.settlement_auto_fix else None,
            workers=s.settlement_workers,
            worker_setup=WorkerSetup.from_settings(s),
            workers_min_rows=s.settlement_workers_min_rows,
        )
    if deps.record_checks is not None and report.state == "SUCCEEDED":
        # The same run checks our own books for the day: each record against its ledger transaction and movement.
        await check_settlement_day(deps.engine, deps.record_checks, report, window)
    return report


def scheduled_at(day: dt.date, at: dt.time, zone: ZoneInfo) -> dt.datetime:
    """The UTC instant day ``day``'s run is due: ``at`` local time on the next day, and not before ``day`` has
    ended in UTC."""
    local = dt.datetime.combine(day + dt.timedelta(days=1), at, tzinfo=zone)
    # PEP 495: a wall time in a spring-forward gap (fold=0) takes the offset from before the change, so it
    # maps to the instant an hour later on the new wall clock; an ambiguous autumn time maps to its first pass.
    due = local.astimezone(dt.UTC)
    day_end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)
    return max(due, day_end)


def due_days(now: dt.datetime, at: dt.time, zone: ZoneInfo, catch_up_days: int) -> list[dt.date]:
    """The days of the last ``catch_up_days`` whose run is due at ``now``, oldest first."""
    today = now.astimezone(zone).date()
    # Yesterday is the usual night, older days are catch-up; today can be due too in a zone far west of UTC.
    days = [today - dt.timedelta(days=n) for n in range(max(catch_up_days, 1), -1, -1)]
    return [d for d in days if scheduled_at(d, at, zone) <= now]


_CLAIM = sa.text(
    """
    INSERT INTO recon_nightly_days (account, day, state, attempts, claimed_by, claimed_until, updated_at)
    VALUES (:account, :day, 'running', 1, :replica, now() + make_interval(secs => :lease), :now)
    ON CONFLICT (account, day) DO UPDATE
        SET state = 'running', attempts = recon_nightly_days.attempts + 1, claimed_by = :replica,
            claimed_until = now() + make_interval(secs => :lease), updated_at = :now
        WHERE (recon_nightly_days.state = 'failed'
               AND recon_nightly_days.updated_at + make_interval(
                   secs => LEAST(:retry_max, :retry * power(2, recon_nightly_days.attempts - 1))) <= :now)
           OR (recon_nightly_days.state = 'running' AND recon_nightly_days.claimed_until < now())
    RETURNING attempts
    """
)


class NightlyScheduler:
    def __init__(
        self,
        engine: AsyncEngine,
        run_day: RunDay,
        *,
        at: dt.time,
        zone: ZoneInfo,
        account: str,
        catch_up_days: int,
        lease: dt.timedelta,
        retry: dt.timedelta = dt.timedelta(minutes=5),
        retry_max: dt.timedelta = dt.timedelta(hours=6),
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
        replica: str = "",
    ) -> None:
        self._engine = engine
        self._run_day = run_day
        self._at, self._zone, self._account = at, zone, account
        self._catch_up = catch_up_days
        self._lease = lease
        self._retry, self._retry_max = retry, retry_max
        self._clock = clock
        self._replica = replica or f"{socket.gethostname()}:{os.getpid()}"

    async def tick(self) -> dict[dt.date, str]:
        """Run every due day this replica could claim; each day's outcome (``succeeded`` or ``failed``)."""
        outcomes: dict[dt.date, str] = {}
        for day in due_days(self._clock(), self._at, self._zone, self._catch_up):
            attempt = await self._claim(day)
            if attempt is None:
                continue  # done already, another replica is on it, or a failed day still backing off
            outcomes[day] = await self._run(day, attempt)
        return outcomes

    async def forever(self, interval_seconds: float) -> None:
        while True:
            try:
                await self.tick()
            except Exception:  # the database away for a moment: the next tick tries again
                log.exception("nightly settlement tick failed")
            stop_if_cancelled()
            await asyncio.sleep(interval_seconds)

    async def _claim(self, day: dt.date) -> int | None:
        async with self._engine.begin() as conn:
            won = await conn.execute(
                _CLAIM,
                {
                    "account": self._account,
                    "day": day,
                    "replica": self._replica,
                    "lease": self._lease.total_seconds(),
                    "retry": self._retry.total_seconds(),
                    "retry_max": self._retry_max.total_seconds(),
                    # The back-off is measured on the scheduler's clock (the failure is stamped with it too).
                    "now": self._clock(),
                },
            )
            attempts = won.scalar()
        return int(attempts) if attempts is not None else None

    async def _run(self, day: dt.date, attempt: int) -> str:
        run_id, error = None, None
        try:
            report = await self._run_day(day)
            run_id = report.run_id
            if report.state == "FAILED":
                error = report.error or "the run failed"
        except Exception as exc:  # any failure is recorded and retried; it must not stop the scheduler
            error = f"{type(exc).__name__}: {getattr(exc, 'message', None) or exc}"
        outcome = "failed" if error else "succeeded"
        async with self._engine.begin() as conn:
            await conn.execute(
                sa.text(
                    "UPDATE recon_nightly_days SET state = :state, run_id = :run_id, last_error = :error,"
                    " claimed_until = NULL, updated_at = :now WHERE account = :account AND day = :day"
                ),
                {"state": "done" if outcome == "succeeded" else "failed", "run_id": run_id, "error": error,
                 "account": self._account, "day": day, "now": self._clock()},
            )  # fmt: skip
        NIGHTLY_RUNS.labels(outcome).inc()
        if error:
            log.error("nightly settlement run failed; retried after a back-off", day=day.isoformat(),
                      attempt=attempt, account=self._account, error=error, run_id=run_id)  # fmt: skip
        else:
            log.info("nightly settlement run done", day=day.isoformat(), run_id=run_id, attempt=attempt)
        return outcome
