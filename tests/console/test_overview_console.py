"""The console's overview: the payment service's GetPaymentStats counts orders per bucket and declines by
code; the page draws them as inline SVG with the settlement lag, open mismatches and dead letters."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import grpc
import httpx
import pytest

from gateway.console.overview import BUCKET_MINUTES, WINDOW_MINUTES, chart
from svckit.gen.payments.v1 import payment_service_pb2 as pb
from svckit.gen.payments.v1 import payment_service_pb2_grpc as pb_grpc
from svckit.grpc_errors import error_info
from svckit.protobuf import timestamp
from tests.console.conftest import paid_order


async def declined_order(api) -> None:
    checkout = f"chk_{uuid.uuid4().hex[:12]}"
    body = {
        "checkout_id": checkout,
        "buyer_info": {"buyer_id": f"buyer_{uuid.uuid4().hex[:8]}", "name": "Bo"},
        "payment_orders": [{"payment_order_id": f"{checkout}_0", "seller_account": "seller_ov",
                            "amount": "9.00", "currency": "USD"}],
        "payment_method": "pm_card_visa_chargeDeclinedInsufficientFunds",
    }  # fmt: skip
    r = await api.post("/v1/payments", json=body, headers={"Idempotency-Key": uuid.uuid4().hex})
    assert r.status_code == 201 and r.json()["payment_orders"][0]["state"] == "failed", r.text


async def _stats(operator_channels) -> pb.GetPaymentStatsResponse:
    stub = pb_grpc.PaymentServiceStub(operator_channels["payment"])
    return await stub.GetPaymentStats(pb.GetPaymentStatsRequest(window_minutes=10, bucket_minutes=10))


async def test_payment_stats_count_new_orders_and_declines_by_code(client, operator_channels):
    before = await _stats(operator_channels)
    await paid_order(client)
    await declined_order(client)
    after = await _stats(operator_channels)

    def total(reply, field):
        return sum(getattr(b, field) for b in reply.buckets)

    def declines(reply):
        return {d.code: d.count for d in reply.declines}.get("insufficient_funds", 0)

    # Other tests create orders meanwhile: at least ours were added.
    assert total(after, "created") >= total(before, "created") + 2
    assert total(after, "succeeded") >= total(before, "succeeded") + 1
    assert total(after, "failed") >= total(before, "failed") + 1
    assert declines(after) >= declines(before) + 1
    stub = pb_grpc.PaymentServiceStub(operator_channels["payment"])
    for bad in (pb.GetPaymentStatsRequest(window_minutes=2000), pb.GetPaymentStatsRequest(bucket_minutes=90)):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.GetPaymentStats(bad)
        assert (err.value.code(), error_info(err.value).reason) == (
            grpc.StatusCode.INVALID_ARGUMENT,
            "INVALID_FILTER",
        )


def test_the_chart_spans_the_window_with_empty_buckets_as_zero():
    now = datetime(2026, 12, 6, 12, 2, tzinfo=UTC)
    step = BUCKET_MINUTES * 60
    newest = int(now.timestamp()) // step * step
    reply = pb.GetPaymentStatsResponse(
        buckets=[
            pb.PaymentStatsBucket(
                start_time=timestamp(datetime.fromtimestamp(newest, UTC)), created=10, succeeded=3, failed=1
            ),
            pb.PaymentStatsBucket(
                start_time=timestamp(datetime.fromtimestamp(newest - 2 * step, UTC)),
                created=5,
                succeeded=0,
                failed=5,
            ),
        ]
    )
    c = chart(reply, now)
    assert len(c.bars) == WINDOW_MINUTES // BUCKET_MINUTES
    assert [b.h > 0 for b in c.bars[-3:]] == [True, False, True]
    assert c.bars[-1].h == 2 * c.bars[-3].h  # bars in proportion to payments per minute
    assert c.total == 15 and c.rate == "33.3 %"  # 3 captured of 9 decided
    assert (
        len(c.rate_points) == 2 and c.rate_points[0][1] == 132
    )  # 0 % captured: the bottom of the drawing box
    assert [r[1:] for r in c.rows] == [("1", 5, "0.0 %"), ("2", 10, "75.0 %")]


async def test_the_overview_page_shows_every_tile(gw, operator, client):
    await declined_order(client)
    page = await operator.http.get("/console/overview")
    assert page.status_code == 200, page.text
    text = page.text
    assert "<svg" in text and "<circle" in text and "insufficient_funds" in text
    for tile in ("Settlement lag", "Open mismatches", "Dead letters", "Declines by code"):
        assert tile in text
    assert 'role="alert"' not in text  # every source answered
    assert "<script" not in text
    async with httpx.AsyncClient(base_url=gw.url) as anonymous:
        r = await anonymous.get("/console/overview")
        assert (r.status_code, r.headers["location"]) == (303, "/console/sign-in")
