"""The scheduler starts each period's run on the sellers' anchor day, once however many replicas look."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime

import pytest

from payment_svc.payouts.domain import Schedule
from payment_svc.payouts.scheduler import PayoutScheduler, due_period
from svckit.gen.payments.v1 import payout_service_pb2 as pb
from tests.payouts.conftest import PayoutStack, uid

ANCHOR = 17
"""No other test's seller has this anchor day, so ticks limited to it start only this test's runs."""


@pytest.mark.parametrize(
    ("schedule", "anchor", "now", "period"),
    [
        (Schedule.MONTHLY, 1, datetime(2026, 12, 1, tzinfo=UTC), "2026-11"),
        (Schedule.MONTHLY, 5, datetime(2026, 12, 4, tzinfo=UTC), None),  # not its day yet
        (Schedule.MONTHLY, 31, datetime(2027, 2, 28, tzinfo=UTC), "2027-01"),  # the month's last day
        (Schedule.MONTHLY, 1, datetime(2027, 1, 3, tzinfo=UTC), "2026-12"),  # across the year
        (Schedule.WEEKLY, 3, datetime(2026, 12, 2, tzinfo=UTC), "2026-W48"),  # a Wednesday
        (Schedule.WEEKLY, 3, datetime(2026, 12, 1, tzinfo=UTC), None),  # Tuesday
        (Schedule.MANUAL, 1, datetime(2026, 12, 1, tzinfo=UTC), None),
    ],
)
def test_the_period_due_on_an_anchor_day(schedule, anchor, now, period):
    assert due_period(schedule, anchor, now) == period


async def test_two_replicas_on_the_anchor_day_start_one_run_that_pays_once(stack: PayoutStack):
    funded, empty = uid("s-sched"), uid("s-sched")
    await stack.register(funded, anchor_day=ANCHOR)
    await stack.register(empty, anchor_day=ANCHOR)
    await stack.sell(funded, 1_000)  # owed 900
    year = random.randint(2001, 2025)  # a period of its own, should the database outlive the session
    replicas = [stack.uses.scheduler, PayoutScheduler(stack.uses.deps, stack.uses.runs)]

    assert await replicas[0].tick(datetime(year, 5, ANCHOR - 1, tzinfo=UTC), {ANCHOR}) == []
    day = datetime(year, 5, ANCHOR, 9, tzinfo=UTC)
    started = await asyncio.gather(*(r.tick(day, {ANCHOR}) for r in replicas))
    (run_id,) = [run for runs in started for run in runs]
    run = await stack.finished(run_id)
    assert run.period == f"{year}-04"
    items = {i.seller_account: i for i in run.items}
    assert set(items) == {funded, empty}
    assert items[funded].amount.amount_minor == 900 and items[funded].payout_id
    assert items[empty].skip_reason == pb.SKIP_REASON_BELOW_MINIMUM
    assert await replicas[1].tick(day, {ANCHOR}) == []  # later ticks of the day find the mark
    listed = await stack.payouts.ListPayouts(pb.ListPayoutsRequest(seller_account=funded))
    assert len(listed.payouts) == 1
