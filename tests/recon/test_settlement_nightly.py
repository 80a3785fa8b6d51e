"""The nightly settlement scheduler: which days are due (DST included, with an injected clock), one run per day
whatever the replicas, a day done is not run again, a failed day is recorded and retried after a back-off."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import Callable
from zoneinfo import ZoneInfo

import pytest
from prometheus_client import REGISTRY
from pydantic import ValidationError

from recon_svc.config import ReconSettings
from recon_svc.settlement.nightly import NightlyScheduler, due_days, scheduled_at
from recon_svc.settlement.run import RunReport
from svckit.errors import Unavailable

BERLIN = ZoneInfo("Europe/Berlin")
AT = dt.time(2, 30)


def _utc(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)


def test_the_run_time_follows_the_local_clock_across_daylight_saving_changes():
    # 02:30 in Berlin: 01:30 UTC in winter, 00:30 UTC in summer.
    assert scheduled_at(dt.date(2026, 1, 10), AT, BERLIN) == _utc("2026-01-11 01:30")
    assert scheduled_at(dt.date(2026, 7, 10), AT, BERLIN) == _utc("2026-07-11 00:30")
    # 2026-03-29 02:00 → 03:00: 02:30 does not exist that night; the run comes at 03:30 CEST (01:30 UTC).
    assert scheduled_at(dt.date(2026, 3, 28), AT, BERLIN) == _utc("2026-03-29 01:30")
    # 2026-10-25 03:00 → 02:00: 02:30 happens twice; the run comes at the first (00:30 UTC), once.
    assert scheduled_at(dt.date(2026, 10, 24), AT, BERLIN) == _utc("2026-10-25 00:30")
    # East of UTC the local night comes before the UTC day has ended: the run waits for the day's end.
    auckland = scheduled_at(dt.date(2026, 1, 10), AT, ZoneInfo("Pacific/Auckland"))
    assert auckland == _utc("2026-01-11 00:00")


def test_due_days_are_the_nights_passed_within_the_catch_up_window():
    # 2026-03-29 01:29 UTC (03:29 CEST, just after the skipped 02:30): the night of the 28th is not due yet...
    assert due_days(_utc("2026-03-29 01:29"), AT, BERLIN, 3) == [
        dt.date(2026, 3, 26),
        dt.date(2026, 3, 27),
    ]
    # ...a minute later it is; and a service down for a week catches up only the last 3 days.
    assert due_days(_utc("2026-03-29 01:30"), AT, BERLIN, 3) == [
        dt.date(2026, 3, 26),
        dt.date(2026, 3, 27),
        dt.date(2026, 3, 28),
    ]


class _Runs:
    """Stands in for fetch-and-reconcile: counts the runs per day; fails the first ``fail_first`` calls."""

    def __init__(self, fail_first: int = 0) -> None:
        self.calls: list[dt.date] = []
        self._fail = fail_first

    async def __call__(self, day: dt.date) -> RunReport:
        self.calls.append(day)
        await asyncio.sleep(0)  # let the other replica's tick run meanwhile
        if len(self.calls) <= self._fail:
            raise Unavailable("SETTLEMENT_REPORT_UNAVAILABLE", "the PSP refused the report run")
        return RunReport(run_id=f"rr_{uuid.uuid4().hex}", state="SUCCEEDED")


def _scheduler(
    engine, runs: _Runs, account: str, replica: str, clock: Callable[[], dt.datetime] | None = None
) -> NightlyScheduler:
    return NightlyScheduler(
        engine,
        runs,
        at=AT,
        zone=BERLIN,
        account=account,
        catch_up_days=2,
        lease=dt.timedelta(hours=1),
        retry=dt.timedelta(minutes=5),
        retry_max=dt.timedelta(minutes=15),
        # 03:00 in Berlin: the nights of the 19th and 20th are due
        clock=clock or (lambda: _utc("2026-11-21 02:00")),
        replica=replica,
    )


async def test_two_replicas_ticking_at_once_run_each_day_once_and_never_again(services):
    engine = services["recon"].engine
    account = f"acct_{uuid.uuid4().hex[:10]}"
    runs = _Runs()
    a, b = _scheduler(engine, runs, account, "a"), _scheduler(engine, runs, account, "b")
    first, second = await asyncio.gather(a.tick(), b.tick())
    assert sorted(runs.calls) == [dt.date(2026, 11, 19), dt.date(2026, 11, 20)]  # each day once
    assert sorted({**first, **second}.items()) == [
        (dt.date(2026, 11, 19), "succeeded"),
        (dt.date(2026, 11, 20), "succeeded"),
    ]
    assert await a.tick() == {} and await b.tick() == {}  # done days are not run again
    assert len(runs.calls) == 2


async def test_a_failed_fetch_is_recorded_counted_and_retried_after_a_back_off_that_doubles(services):
    engine = services["recon"].engine
    account = f"acct_{uuid.uuid4().hex[:10]}"
    runs = _Runs(fail_first=2)
    now = [_utc("2026-11-21 02:00")]
    scheduler = _scheduler(engine, runs, account, "a", clock=lambda: now[0])
    failed_before = REGISTRY.get_sample_value("recon_nightly_runs_total", {"outcome": "failed"}) or 0

    assert await scheduler.tick() == {dt.date(2026, 11, 19): "failed", dt.date(2026, 11, 20): "failed"}
    assert REGISTRY.get_sample_value("recon_nightly_runs_total", {"outcome": "failed"}) == failed_before + 2
    async with engine.connect() as conn:
        row = (
            await conn.exec_driver_sql(
                "SELECT state, attempts, last_error FROM recon_nightly_days WHERE account = %s AND day = %s",
                (account, dt.date(2026, 11, 19)),
            )
        ).one()
    assert (row.state, row.attempts) == ("failed", 1)
    assert "the PSP refused the report run" in row.last_error

    now[0] += dt.timedelta(minutes=4)
    assert await scheduler.tick() == {}  # still backing off: the PSP is not asked every tick
    now[0] += dt.timedelta(minutes=1)
    assert await scheduler.tick() == {dt.date(2026, 11, 19): "succeeded", dt.date(2026, 11, 20): "succeeded"}
    async with engine.connect() as conn:
        row = (
            await conn.exec_driver_sql(
                "SELECT state, attempts, run_id FROM recon_nightly_days WHERE account = %s AND day = %s",
                (account, dt.date(2026, 11, 19)),
            )
        ).one()
    assert (row.state, row.attempts) == ("done", 2) and row.run_id.startswith("rr_")
    assert len(runs.calls) == 4


async def test_a_day_that_keeps_failing_waits_twice_as_long_each_time_up_to_the_cap(services):
    engine = services["recon"].engine
    account = f"acct_{uuid.uuid4().hex[:10]}"
    runs = _Runs(fail_first=1000)
    now = [_utc("2026-11-21 02:00")]
    scheduler = _scheduler(engine, runs, account, "a", clock=lambda: now[0])
    assert len(await scheduler.tick()) == 2  # attempt 1 of both days fails
    waits = []
    for _ in range(4):
        waited = dt.timedelta()
        while True:
            now[0] += dt.timedelta(minutes=1)
            waited += dt.timedelta(minutes=1)
            if await scheduler.tick():
                break
        waits.append(waited)
    # 5 min, then 10, then the 15-minute cap
    assert waits == [dt.timedelta(minutes=m) for m in (5, 10, 15, 15)]


def test_the_nightly_settings_are_off_by_default_and_refuse_an_unknown_time_zone():
    assert ReconSettings().nightly_at is None  # no nightly run unless configured (and none in tests)
    configured = ReconSettings(nightly_at="02:30", timezone="Europe/Berlin")
    assert (configured.nightly_at, configured.timezone) == (dt.time(2, 30), "Europe/Berlin")
    with pytest.raises(ValidationError, match="not an IANA time zone"):
        ReconSettings(timezone="Mars/Olympus")
