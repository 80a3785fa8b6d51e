"""The pay-out janitor: resumes runs and pay-outs a crash interrupted, retries steps whose PSP answer was
lost (same keys), and asks the PSP about pay-outs in transit without a final answer, alerting once a
pay-out is past its deadline (error log + metric). A final answer goes through the pay-out inbox, like
the PSP's events (``.inbox``), and each pass ends by applying what the inbox holds."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

from prometheus_client import Counter

from payment_svc.payouts.deps import PayoutDeps
from payment_svc.payouts.domain import SENDING, PayoutState
from payment_svc.payouts.inbox import PayoutInbox, fact_of
from payment_svc.payouts.run import PayoutRuns
from payment_svc.payouts.steps import PayoutSteps
from payment_svc.psp import PspError
from svckit.logging import get_logger
from svckit.runtime import stop_if_cancelled

log = get_logger(__name__)

PAYOUTS_PAST_DEADLINE = Counter(
    "payment_payouts_past_deadline_total", "Pay-outs without a final answer past their deadline"
)


class PayoutJanitor:
    def __init__(self, deps: PayoutDeps, runs: PayoutRuns, steps: PayoutSteps, inbox: PayoutInbox) -> None:
        self._d = deps
        self._runs = runs
        self._steps = steps
        self._inbox = inbox

    async def janitor_pass(self) -> int:
        """One look at everything due; returns the pay-outs looked at."""
        s = self._d.settings
        async with self._d.store.unit() as repo:
            runs = await repo.stale_runs(s.janitor_batch_size)
        for run_id in runs:
            await self._runs.resume(run_id)
        async with self._d.store.unit() as repo:
            due = await repo.due_payouts(s.janitor_batch_size)
        for p in due:
            try:
                if p.state in SENDING:
                    await self._steps.drive(p.payout_id, cause="janitor")
                else:
                    await self._ask_psp(p.payout_id)
            except Exception:
                log.exception("janitor could not resolve a pay-out", payout_id=p.payout_id)
        await self._inbox.drain()
        return len(due)

    async def _ask_psp(self, payout_id: str) -> None:
        s = self._d.settings
        async with self._d.store.unit() as repo:
            p = await repo.get_payout(payout_id)
        if p is None or p.psp_payout_id is None or p.state is not PayoutState.IN_TRANSIT:
            return
        try:
            po = await self._d.psp.retrieve_payout(p.psp_payout_id, p.psp_account)
        except PspError as exc:
            log.warning("janitor: PSP unavailable", payout_id=payout_id, error=exc.message)
            po = None
        fact = fact_of(f"janitor:{p.psp_payout_id}:{po.status}", po, None, "janitor") if po else None
        async with self._d.store.unit() as repo:
            locked = await repo.get_payout(payout_id, for_update=True)
            if locked is None:
                return
            if fact is not None:
                # Applied with the inbox's other facts, in the PSP's order (the pass drains it).
                await self._inbox.record_in(repo, fact)
            now = datetime.now(UTC)
            past = fact is None and (now - locked.created_at).total_seconds() > s.payout_deadline_seconds
            if past and locked.alerted_at is None:
                PAYOUTS_PAST_DEADLINE.inc()
                log.error(
                    "pay-out past its deadline without a final answer",
                    payout_id=payout_id,
                    psp_payout_id=locked.psp_payout_id,
                    state=locked.state,
                )
            delay = min(s.payout_check_seconds * 2 ** min(locked.attempts, 10), 86_400.0)
            await repo.schedule_check(payout_id, now + timedelta(seconds=delay), alerted=past)

    async def janitor_forever(self) -> None:
        while True:
            started = time.monotonic()
            try:
                await self.janitor_pass()
            except Exception:
                log.exception("pay-out janitor pass failed; will retry")
            stop_if_cancelled()  # a pass's own per-item handlers may have caught a converted cancellation
            await asyncio.sleep(
                max(0.0, self._d.settings.janitor_interval_seconds - (time.monotonic() - started))
            )
