"""Our succeeded refunds that no settlement row matched: pending inside the grace period, then MISSING_FROM_PSP
(manual), like our orders and pay-outs; a refund whose row a file counted is not missing."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid

from svckit.gen.payments.v1 import payment_service_pb2 as pb
from tests.recon import test_settlement_run as base
from tests.recon.test_settlement_run import _fresh_start, _mismatches, _pay, _report_csv, _run, _settled

recon = base.recon  # the fixture: recon's ports as the ``recon`` identity


async def _refund(recon, order: str, amount: int) -> str:
    refund = (
        await recon["payments"].CreateRefund(
            pb.CreateRefundRequest(payment_order_id=order, amount_minor=amount),
            metadata=[("idempotency-key", uuid.uuid4().hex)],
        )
    ).refund
    for _ in range(100):
        listed = await recon["payments"].ListRefunds(pb.ListRefundsRequest(payment_order_id=order))
        if listed.refunds[0].state == pb.REFUND_STATE_SUCCEEDED:
            return refund.refund_id
        await asyncio.sleep(0.1)
    raise AssertionError(f"refund {refund.refund_id} did not succeed")


async def test_our_refund_missing_from_the_file_is_pending_then_missing(shared_psp, services, recon):
    t0 = dt.datetime.now(dt.UTC)
    start = _fresh_start(shared_psp)
    [counted_order] = await _pay(recon, [5000])
    [dropped_order] = await _pay(recon, [4000])
    await _settled(services, [counted_order, dropped_order])
    counted = await _refund(recon, counted_order, 1000)
    dropped = await _refund(recon, dropped_order, 700)
    data = _report_csv(shared_psp, start)
    header, *lines = data.decode().splitlines()
    assert sum(dropped in line for line in lines) == 1  # the refund's row (our refund_id in its metadata)
    kept = [line for line in lines if dropped not in line]
    window = (t0, dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1))

    today = await _run(recon, "\n".join([header, *kept, ""]).encode(), expected_window=window)
    # Both charges and one refund counted; the other refund is inside the grace period.
    assert (today.state, today.pending, today.mismatches_by_code) == ("SUCCEEDED", 1, {})

    # Three days on, the grace period (2 days) is over: the same absence is a break.
    empty = f"{header},payment_metadata[probe_{uuid.uuid4().hex[:8]}]\n".encode()
    later = await _run(
        recon, empty, expected_window=window, now=dt.datetime.now(dt.UTC) + dt.timedelta(days=3)
    )
    assert (later.state, later.pending, later.mismatches_by_code) == ("SUCCEEDED", 0, {"MISSING_FROM_PSP": 1})
    [missing] = await _mismatches(recon, later.run_id)
    assert (missing.our_reference, missing.classification, missing.currency, missing.amount_minor) == (
        f"refund:{dropped}",
        "manual",
        "USD",
        -700,  # money leaving our balance, as the refund's row would say
    )
    assert missing.differences == [{"field": "settlement_row", "ours": "SUCCEEDED", "theirs": "absent"}]
    assert counted not in {m.our_reference for m in await _mismatches(recon, today.run_id)}
