"""A day of real traffic through the payment service and the simulator (successes, a decline, a refund, a
dispute, a seller's pay-out, the PSP's payout of our balance, fees) reconciles with nothing open, and the
receivable follows what the PSP says it owes."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
import uuid
from decimal import Decimal

import httpx

from psp_sim.testing import DEFAULT_API_KEY
from svckit.gen.payments.v1 import payment_service_pb2 as pb
from svckit.gen.payments.v1 import payout_service_pb2 as popb
from svckit.gen.payments.v1 import payout_service_pb2_grpc as po_grpc
from tests.recon import test_record_checks as record_checks
from tests.recon import test_settlement_run as base
from tests.recon.psp_disputes import deliver, dispute_events
from tests.recon.test_settlement_run import REPORT, _fresh_start, _mismatches, _receivable, _run, _settled

recon = base.recon  # the fixture: recon's ports as the ``recon`` identity
checker = record_checks.checker  # the fixture: the per-record checks over the real services

COLUMNS = [
    "balance_transaction_id", "created_utc", "currency", "gross", "fee", "net", "reporting_category", "source_id",
    "charge_id", "payment_intent_id", "payment_metadata[checkout_id]", "refund_metadata[refund_id]",
    "transfer_metadata[payout_id]",
]  # fmt: skip


async def _cart(recon, seller: str, amount: int, method: str) -> str:
    tag = uuid.uuid4().hex[:8]
    order = f"po_{tag}_0"
    await recon["payments"].CreatePayment(
        pb.CreatePaymentRequest(
            checkout_id=f"co_{tag}",
            buyer=pb.BuyerInfo(buyer_id=f"buyer-day-{tag}"),
            payment_orders=[
                pb.PaymentOrderInput(
                    payment_order_id=order, seller_account=seller, amount_minor=amount, currency="USD"
                )
            ],
            payment_method=method,
        ),
        metadata=[("idempotency-key", uuid.uuid4().hex)],
    )
    return order


async def _poll(probe, what: str):
    # Bounded at 30 s: the shared services also serve two other workers' tests, and a passing check returns
    # as soon as it holds.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        value = await probe()
        if value:
            return value
        await asyncio.sleep(0.05)
    raise AssertionError(what)


def _file(sim, start: int) -> bytes:
    sim.admin.advance(seconds=2)
    run = sim.client().v1.reporting.report_runs.create(
        params={
            "report_type": REPORT,
            "parameters": {"interval_start": start, "interval_end": sim.admin.now(), "columns": COLUMNS},
        }
    )
    reply = httpx.get(run.result.url, headers={"Authorization": f"Bearer {DEFAULT_API_KEY}"})
    reply.raise_for_status()
    return reply.content


def _gross_of(data: bytes, *categories: str) -> int:
    """Sum of the file's gross for these categories, minor units (USD)."""
    header, *lines = data.decode().splitlines()
    cols = header.split(",")
    total = Decimal(0)
    for line in lines:
        cells = line.split(",")
        if cells[cols.index("reporting_category")] in categories:
            total += Decimal(cells[cols.index("gross")])
    return int(total * 100)


async def test_a_day_with_every_kind_of_activity_reconciles_to_zero(
    shared_psp, services, channels, operator_channels, recon, checker
):
    sim = shared_psp
    t0 = dt.datetime.now(dt.UTC)
    before = await _receivable(channels)
    start = _fresh_start(sim)
    seller = f"s-day-{uuid.uuid4().hex[:8]}"
    payouts = po_grpc.PayoutServiceStub(operator_channels["payment"])
    account = sim.client().v1.accounts.create(params={"type": "custom"}).id
    await payouts.RegisterSeller(
        popb.RegisterSellerRequest(
            seller=popb.Seller(
                seller_account=seller,
                psp_account=account,
                payout_currency="USD",
                schedule=popb.PAYOUT_SCHEDULE_MONTHLY,
                anchor_day=1,
            )
        ),
        metadata=[("idempotency-key", uuid.uuid4().hex)],
    )
    # Funds available at once, so the PSP can transfer the seller's pay-out from our balance (after the
    # disputes took their charges and fees back: this one's, and any earlier test's on the shared simulator,
    # which the large refunded cart covers).
    sold = await _cart(recon, seller, 20000, "pm_card_bypassPending")
    refunded = await _cart(recon, f"s-day-{uuid.uuid4().hex[:8]}", 100000, "pm_card_bypassPending")
    disputed = await _cart(recon, f"s-day-{uuid.uuid4().hex[:8]}", 1000, "pm_card_createDispute")
    declined = await _cart(recon, f"s-day-{uuid.uuid4().hex[:8]}", 900, "pm_card_visa_chargeDeclined")
    await _settled(services, [sold, refunded, disputed])
    got = await recon["payments"].GetPaymentOrder(pb.GetPaymentOrderRequest(payment_order_id=declined))
    assert got.payment_order.state == pb.PAYMENT_ORDER_STATE_FAILED
    await recon["payments"].CreateRefund(
        pb.CreateRefundRequest(payment_order_id=refunded, amount_minor=1200),
        metadata=[("idempotency-key", uuid.uuid4().hex)],
    )

    async def refund_done():
        listed = await recon["payments"].ListRefunds(pb.ListRefundsRequest(payment_order_id=refunded))
        return listed.refunds and listed.refunds[0].state == pb.REFUND_STATE_SUCCEEDED

    await _poll(refund_done, "refund succeeded")
    run = (
        await payouts.StartPayoutRun(
            popb.StartPayoutRunRequest(period="2026-11", seller_accounts=[seller]),
            metadata=[("idempotency-key", uuid.uuid4().hex)],
        )
    ).run

    async def paid_out():
        listed = await payouts.ListPayouts(popb.ListPayoutsRequest(seller_account=seller))
        return [p for p in listed.payouts if p.psp_transfer_id]

    [payout] = await _poll(paid_out, f"pay-out of run {run.run_id} transferred")
    # The PSP pays part of our balance out to our bank.
    sim.client().v1.payouts.create(params={"amount": 100, "currency": "usd"})
    await _poll(
        lambda: _receivable_is(channels, before + 20000 + 100000 + 1000 - 1200), "our postings landed"
    )

    # The payment service records the dispute from its charge.dispute.* webhooks (delivered here as the gateway
    # would; no gateway is subscribed to the simulator in this test): the run matches the file's row to it.
    disputed_intent = (
        await recon["payments"].GetPaymentOrder(pb.GetPaymentOrderRequest(payment_order_id=disputed))
    ).payment_order.psp_reference
    await deliver(sim, recon["payments"], dispute_events(sim, start, disputed_intent))
    data = _file(sim, start)
    # Before the file is counted the receivable holds what the PSP's file says it owes for the day.
    assert await _receivable(channels) - before == _gross_of(data, "charge", "refund")
    # Our successes and the pay-out of the day are all in the file: nothing pending, nothing missing.
    report = await _run(recon, data, expected_window=(t0, dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)))
    assert (report.state, report.pending) == ("SUCCEEDED", 0), report
    assert report.mismatches_by_code == {}, await _mismatches(recon, report.run_id)
    assert await _mismatches(recon, report.run_id) == []
    categories = {k.split(":")[1]: v["rows"] for k, v in report.psp_totals.items()}
    assert categories == {"charge": 3, "refund": 1, "dispute": 1, "transfer": 1, "payout": 1}
    assert report.matched == report.rows_read == 7
    # Charges, the refund and the dispute are booked; the transfer and the PSP's payout move nothing of ours.
    assert report.booked == 5
    # Everything the PSP owed for the day is settled: the receivable is back where it was.
    assert await _receivable(channels) == before
    assert payout.amount.amount_minor > 0
    # ListPayouts' creation window, which the missing-pay-out check pages through (as the recon identity).
    inside, before_t0 = (
        popb.ListPayoutsRequest(seller_account=seller),
        popb.ListPayoutsRequest(seller_account=seller),
    )
    inside.create_time_from.FromDatetime(t0)
    before_t0.create_time_before.FromDatetime(t0)
    as_recon = po_grpc.PayoutServiceStub(recon["payout_channel"])
    assert [p.payout_id for p in (await as_recon.ListPayouts(inside)).payouts] == [payout.payout_id]
    assert list((await as_recon.ListPayouts(before_t0)).payouts) == []
    # Our own books agree with the day's records in amount, currency and seller: the orders, the refund (its
    # movement less than the refund by the commission given back) and the pay-out's steps.
    checks = await checker["checker"].check((t0, dt.datetime.now(dt.UTC)), f"rcn_day_{uuid.uuid4().hex}")
    assert [m for m, _ in checks.mismatches] == []
    assert checks.records_checked == 5  # three captured orders, the refund, the pay-out


async def _receivable_is(channels, expected: int) -> bool:
    return await _receivable(channels) == expected
