"""The pay-out scheduler: starts each period's run by itself, on the sellers' anchor day.

Every ``payout_scheduler_interval_seconds`` it looks at the (schedule, anchor day) pairs the sellers
have. A monthly seller with anchor day D is paid for the previous month on day D of the current one
(the month's last day when it has fewer days); a weekly one with anchor D (1 = Monday) for the previous
ISO week on weekday D of the current one. A pair that is due gets one run naming its sellers.

Safe with several replicas: the run is stored in the same transaction as a mark whose primary key is
(period, anchor day), so only the replica whose insert wins starts it; the others find the mark and do
nothing. A run the winner could not finish (a crash) is resumed by the janitor like any run, and the
run itself pays each (seller, period) at most once, so even a run an operator started for the same
period at the same moment pays nobody twice.
"""

from __future__ import annotations

import asyncio
import calendar
import time
from collections.abc import Collection
from datetime import UTC, datetime, timedelta

from payment_svc.payouts.deps import PayoutDeps
from payment_svc.payouts.domain import Schedule
from payment_svc.payouts.run import PayoutRuns, new_run_id
from svckit.logging import get_logger
from svckit.runtime import stop_if_cancelled

log = get_logger(__name__)


def due_period(schedule: Schedule, anchor_day: int, now: datetime) -> str | None:
    """The period a (schedule, anchor day) is due to be paid for at ``now``, or None before its day."""
    if schedule is Schedule.MONTHLY:
        last_day = calendar.monthrange(now.year, now.month)[1]
        if now.day < min(anchor_day, last_day):
            return None
        previous = now.replace(day=1) - timedelta(days=1)
        return f"{previous.year:04d}-{previous.month:02d}"
    if schedule is Schedule.WEEKLY:
        if now.isoweekday() < anchor_day:
            return None
        year, week, _ = (now - timedelta(days=7)).isocalendar()
        return f"{year:04d}-W{week:02d}"
    return None  # MANUAL sellers are paid when an operator names them


class PayoutScheduler:
    def __init__(self, deps: PayoutDeps, runs: PayoutRuns) -> None:
        self._d = deps
        self._runs = runs

    async def tick(self, now: datetime | None = None, anchor_days: Collection[int] = ()) -> list[str]:
        """Start the runs that are due and not started yet (by this or another replica); their ids.
        ``anchor_days`` limits the look to those days (every day when empty)."""
        now = now or datetime.now(UTC)
        async with self._d.store.unit() as repo:
            anchors = await repo.scheduled_anchors()
        started = []
        for schedule, anchor_day in sorted(anchors):
            if anchor_days and anchor_day not in anchor_days:
                continue
            period = due_period(schedule, anchor_day, now)
            if period is None:
                continue
            run_id = new_run_id()
            async with self._d.store.unit() as repo:
                if not await repo.mark_scheduled(period, anchor_day, run_id):
                    continue  # started already, here or by another replica
                sellers = await repo.sellers_of_anchor(schedule, anchor_day)
                await repo.insert_run(run_id, period, False, sellers, len(sellers))
            log.info("scheduled pay-out run started", run_id=run_id, period=period, anchor_day=anchor_day)
            self._runs.spawn(run_id)
            started.append(run_id)
        return started

    async def scheduler_forever(self) -> None:
        while True:
            started = time.monotonic()
            try:
                await self.tick()
            except Exception:
                log.exception("pay-out scheduler tick failed; will retry")
            stop_if_cancelled()  # a pass's own per-item handlers may have caught a converted cancellation
            interval = self._d.settings.payout_scheduler_interval_seconds
            await asyncio.sleep(max(0.0, interval - (time.monotonic() - started)))
