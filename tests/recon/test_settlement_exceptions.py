"""The exceptions queue on the recon database: filter, assign, annotate, resolve one or many, all kept."""

from __future__ import annotations

import datetime as dt
import io
import uuid
from collections.abc import AsyncIterator

import pytest
from prometheus_client import REGISTRY

from recon_svc.settlement import exceptions as q
from recon_svc.settlement.classify import OurOrder, OurPayout, OurRefund, Rules
from recon_svc.settlement.run import reconcile_file
from svckit.errors import FailedPrecondition, InvalidArgument, NotFound

HEADER = "balance_transaction_id,created_utc,currency,gross,fee,net,reporting_category,source_id"


class _NoRecords:
    async def checkout_for(self, row):
        return None

    async def checkouts(self, checkout_ids):
        return {}

    async def refund_for(self, row):
        return None

    async def disputes_for(self, payment_intent_id):
        return None

    async def payout_for(self, payout_id):
        return None

    async def captured_orders(self, start: dt.datetime, end: dt.datetime) -> AsyncIterator[OurOrder]:
        return  # none of ours was captured
        yield  # (which makes this an async generator, as PaymentRecords declares)

    async def payouts_created(self, start: dt.datetime, end: dt.datetime) -> AsyncIterator[OurPayout]:
        return  # none of ours was paid out
        yield  # (an async generator, as PaymentRecords declares)

    async def refunds_succeeded(self, start: dt.datetime, end: dt.datetime) -> AsyncIterator[OurRefund]:
        return  # none of ours was refunded
        yield  # (an async generator, as PaymentRecords declares)


class _NoBooking:
    async def post(self, bookings):
        raise AssertionError("nothing of these rows is ours, so nothing is booked")


async def _run_with_strangers(engine, amounts: list[str]) -> str:
    """A file whose rows match nothing of ours: one UNMATCHED_ROW each."""
    tag = uuid.uuid4().hex[:10]
    lines = [HEADER] + [
        f"txn_{tag}{i},2026-11-20 10:00:0{i},usd,{a},0.00,{a},charge,ch_{tag}{i}"
        for i, a in enumerate(amounts)
    ]
    data = ("\n".join(lines) + "\n").encode()
    report = await reconcile_file(
        engine, io.BytesIO(data), _NoRecords(), _NoBooking(), Rules(fee_tolerance_minor=0)
    )
    assert report.mismatches_by_code == {"UNMATCHED_ROW": len(amounts)}
    return report.run_id


async def test_filter_assign_note_and_resolve_in_bulk_with_an_audit_trail(services):
    engine = services["recon"].engine
    run_id = await _run_with_strangers(engine, ["1.00", "25.00", "300.00"])
    async with engine.begin() as conn:
        page, cursor = await q.list_mismatches(conn, q.Filter(run_id=run_id, classification="unclassified"))
        assert [m.amount_minor for m in page] == [100, 2500, 30000] and cursor is None
        big, _ = await q.list_mismatches(conn, q.Filter(run_id=run_id, min_amount_minor=2500))
        assert [m.amount_minor for m in big] == [2500, 30000]
        first, cursor = await q.list_mismatches(conn, q.Filter(run_id=run_id), limit=2)
        rest, _ = await q.list_mismatches(conn, q.Filter(run_id=run_id), limit=2, after_id=cursor)
        assert len(first) == 2 and [m.amount_minor for m in rest] == [30000]

        target = page[0].mismatch_id
        await q.assign(conn, target, "ada@finance", actor="op-1")
        await q.annotate(conn, target, "asked the PSP about ch_", actor="op-1")
        assert (
            await q.resolve(conn, [m.mismatch_id for m in page[:2]], "psp_contacted", "PSP ticket 42", "op-2")
            == 2
        )

    async with engine.connect() as conn:
        still_open, _ = await q.list_mismatches(conn, q.Filter(run_id=run_id, state="open"))
        assert [m.amount_minor for m in still_open] == [30000]
        [done] = [
            m for m in (await q.list_mismatches(conn, q.Filter(run_id=run_id)))[0] if m.mismatch_id == target
        ]
        assert (done.state, done.assignee, done.resolution_code) == (
            "resolved",
            "ada@finance",
            "psp_contacted",
        )
        trail = [(actor, action, detail) for actor, action, detail, _ in await q.history(conn, target)]
    assert trail == [
        ("recon", "opened", f"UNMATCHED_ROW in run {run_id}"),
        ("op-1", "assigned", "ada@finance"),
        ("op-1", "noted", "asked the PSP about ch_"),
        ("op-2", "resolved:psp_contacted", "PSP ticket 42"),
    ]


async def test_bad_resolutions_are_refused_and_change_nothing(services):
    engine = services["recon"].engine
    run_id = await _run_with_strangers(engine, ["2.00", "3.00"])
    async with engine.connect() as conn:
        page, _ = await q.list_mismatches(conn, q.Filter(run_id=run_id))
    ids = [m.mismatch_id for m in page]
    for args, error, reason in [
        ((ids, "fixed_it", "x"), InvalidArgument, "INVALID_RESOLUTION_CODE"),
        ((ids, "written_off", "  "), InvalidArgument, "MISSING_FIELD"),
        (([ids[0], "mm_nope"], "written_off", "x"), NotFound, "MISMATCH_NOT_FOUND"),
    ]:
        with pytest.raises(error) as err:  # outside the transaction, which the error rolls back
            async with engine.begin() as conn:
                await q.resolve(conn, *args, actor="op")
        assert err.value.reason == reason
    async with engine.begin() as conn:
        await q.resolve(conn, [ids[0]], "false_positive", "test row", actor="op")
    with pytest.raises(FailedPrecondition) as err:
        async with engine.begin() as conn:
            await q.resolve(conn, ids, "written_off", "again", actor="op")
    assert err.value.reason == "MISMATCH_NOT_OPEN"
    async with engine.connect() as conn:
        page, _ = await q.list_mismatches(conn, q.Filter(run_id=run_id))
    assert [m.state for m in page] == ["resolved", "open"]  # the failed bulk resolve left the other open


async def test_unclassified_mismatches_and_failed_runs_are_counted(services):
    def sample(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    unclassified, failed = (
        sample("recon_settlement_unclassified_total"),
        sample("recon_settlement_runs_total", state="FAILED"),
    )
    await _run_with_strangers(services["recon"].engine, ["4.00", "5.00"])
    await reconcile_file(
        services["recon"].engine, io.BytesIO(b""), _NoRecords(), _NoBooking(), Rules(fee_tolerance_minor=0)
    )
    assert sample("recon_settlement_unclassified_total") - unclassified == 2
    assert sample("recon_settlement_runs_total", state="FAILED") - failed == 1
