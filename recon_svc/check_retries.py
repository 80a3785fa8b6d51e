"""Retries of a settlement day's internal checks that failed at the end of its run (a service unreachable).

The end of the run queues the day in ``recon_check_retries`` (record_checks.check_settlement_day); every tick
the retrier claims the runs whose back-off is over and runs their checks again, with the nightly run's back-off
(``RECON_NIGHTLY_RETRY_SECONDS``, doubled after each failure up to ``RECON_NIGHTLY_RETRY_MAX_SECONDS``) and the
same claim: one ``UPDATE ... WHERE run_id = (SELECT ... FOR UPDATE SKIP LOCKED)`` that only one replica wins, and
a lease after which a dead replica's claim is free again.

- Passed: the mismatches join the run (queued once: an attempt that failed half-way queued some already, and
  those keep their first id), its stored report counts them and says after how many attempts
  (``internal_checks.attempts``), logged, and ``recon_internal_checks_retried_total{outcome="passed"}``.
- Failed again: retried after the next back-off (``outcome="failed"``).
- Failed at the cap (the wait before this attempt was already ``RECON_NIGHTLY_RETRY_MAX_SECONDS``): no more
  retries, an error log and ``outcome="abandoned"``, what an alert watches; ``CompareWalletsWithLedger`` with the
  day's window runs them by hand.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from prometheus_client import Counter
from sqlalchemy.ext.asyncio import AsyncEngine

from recon_svc.record_checks import RecordChecker, failure_reason, run_day_checks, save_internal_checks
from recon_svc.settlement import tables as t
from svckit.logging import get_logger
from svckit.runtime import stop_if_cancelled

log = get_logger(__name__)

RETRIED = Counter(
    "recon_internal_checks_retried_total",
    "Retries of a settlement day's failed internal checks, by outcome (passed, failed, abandoned)",
    ["outcome"],
)

_CLAIM = sa.text(
    """
    UPDATE recon_check_retries
       SET state = 'running', attempts = attempts + 1, claimed_until = now() + make_interval(secs => :lease),
           updated_at = :now
     WHERE run_id = (
        SELECT run_id FROM recon_check_retries
         WHERE (state = 'failed'
                AND updated_at + make_interval(secs => LEAST(:retry_max, :retry * power(2, attempts - 1))) <= :now)
            OR (state = 'running' AND claimed_until < now())
         ORDER BY updated_at
         LIMIT 1
         FOR UPDATE SKIP LOCKED)
    RETURNING run_id, window_start, window_end, attempts
    """
)
"""One due run, claimed: failed and its back-off over (the same doubling as the nightly days'), or claimed by a
replica whose lease expired."""


@dataclass
class _StoredReport:
    """A run's stored report, with the counts the retried checks add to."""

    run_id: str
    stored: dict[str, Any]
    mismatches_by_code: dict[str, int] = field(default_factory=dict)
    open_by_classification: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.mismatches_by_code = dict(self.stored.get("mismatches_by_code") or {})
        self.open_by_classification = dict(self.stored.get("open_by_classification") or {})

    def as_dict(self) -> dict[str, object]:
        return self.stored | {
            "mismatches_by_code": self.mismatches_by_code,
            "open_by_classification": self.open_by_classification,
        }


class CheckRetrier:
    def __init__(
        self,
        engine: AsyncEngine,
        checker: RecordChecker,
        *,
        retry: dt.timedelta,
        retry_max: dt.timedelta,
        lease: dt.timedelta,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self._engine = engine
        self._checker = checker
        self._retry, self._retry_max, self._lease = retry, retry_max, lease
        self._clock = clock

    async def tick(self) -> dict[str, str]:
        """Retry every due run this replica could claim; each run's outcome (passed, failed or abandoned)."""
        outcomes: dict[str, str] = {}
        while (claimed := await self._claim()) is not None:
            run_id, window, attempt = claimed
            outcomes[run_id] = await self._retry_run(run_id, window, attempt)
        return outcomes

    async def forever(self, interval_seconds: float) -> None:
        while True:
            try:
                await self.tick()
            except Exception:  # the database away for a moment: the next tick tries again
                log.exception("internal checks retry tick failed")
            stop_if_cancelled()
            await asyncio.sleep(interval_seconds)

    async def _claim(self) -> tuple[str, tuple[dt.datetime, dt.datetime], int] | None:
        async with self._engine.begin() as conn:
            row = (
                await conn.execute(
                    _CLAIM,
                    {
                        "lease": self._lease.total_seconds(),
                        "retry": self._retry.total_seconds(),
                        "retry_max": self._retry_max.total_seconds(),
                        "now": self._clock(),
                    },
                )
            ).one_or_none()
        if row is None:
            return None
        return row.run_id, (row.window_start, row.window_end), row.attempts

    def _at_cap(self, attempt: int) -> bool:
        """Whether the wait before ``attempt`` (the first retry is attempt 2) was the back-off's cap already."""
        waited = self._retry.total_seconds() * 2 ** max(attempt - 2, 0)
        return waited >= self._retry_max.total_seconds()

    async def _retry_run(self, run_id: str, window: tuple[dt.datetime, dt.datetime], attempt: int) -> str:
        async with self._engine.connect() as conn:
            stored = await conn.scalar(sa.select(t.runs.c.report).where(t.runs.c.run_id == run_id))
        report = _StoredReport(run_id, dict(stored or {}))
        try:
            _, summary = await run_day_checks(self._engine, self._checker, report, window)
        except Exception as exc:  # recorded on the run and retried (or abandoned at the cap)
            reason = failure_reason(exc)
            outcome = "abandoned" if self._at_cap(attempt) else "failed"
            await self._finish(run_id, outcome, reason)
            await save_internal_checks(
                self._engine, report, {"error": reason, "attempts": attempt, "retry": _RETRY[outcome]}
            )
            if outcome == "abandoned":
                log.error("internal checks still fail after the retry back-off's cap; run them by hand",
                          run_id=run_id, attempts=attempt, reason=reason)  # fmt: skip
            else:
                log.warning("internal checks failed again; retried after a back-off",
                            run_id=run_id, attempts=attempt, reason=reason)  # fmt: skip
        else:
            outcome = "passed"
            await self._finish(run_id, "done", None)
            await save_internal_checks(self._engine, report, summary | {"attempts": attempt})
            log.info("internal checks passed on retry", run_id=run_id, attempts=attempt,
                     mismatches=summary["mismatches"])  # fmt: skip
        RETRIED.labels(outcome).inc()
        return outcome

    async def _finish(self, run_id: str, state: str, error: str | None) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(
                t.check_retries.update()
                .where(t.check_retries.c.run_id == run_id)
                .values(state=state, last_error=error, claimed_until=None, updated_at=self._clock())
            )


_RETRY = {"failed": "scheduled", "abandoned": "abandoned"}
"""What ``internal_checks.retry`` says after a failed retry."""
