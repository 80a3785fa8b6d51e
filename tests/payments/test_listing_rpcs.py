"""ListPaymentOrders and ListRefunds over gRPC: the operator's reads, keyset pages, and the filters the
REST gateway cannot send (an unspecified or unknown state, a Timestamp out of range) refused cleanly."""

from __future__ import annotations

import uuid

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from svckit.gen.payments.v1 import payment_service_pb2 as pb
from svckit.gen.payments.v1 import payment_service_pb2_grpc as pb_grpc
from svckit.grpc_errors import error_info


@pytest.fixture
async def operator(infra, pay):
    channel = infra.channel(pay.handle.address, "operator")
    yield pb_grpc.PaymentServiceStub(channel)
    await channel.close()


async def _hosted_checkout(pay, seller: str) -> str:
    run = uuid.uuid4().hex[:10]
    await pay.stub.CreatePayment(
        pb.CreatePaymentRequest(
            checkout_id=f"co_{run}",
            buyer=pb.BuyerInfo(buyer_id=f"buyer_{run}"),
            payment_orders=[
                pb.PaymentOrderInput(
                    payment_order_id=f"po_{run}", seller_account=seller, amount_minor=1000, currency="EUR"
                )
            ],
            success_url="http://shop.test/ok",
            cancel_url="http://shop.test/cancel",
        ),
        metadata=[("idempotency-key", uuid.uuid4().hex)],
    )
    return f"po_{run}"


async def test_the_operator_pages_through_a_sellers_orders_newest_first(pay, operator):
    seller = f"seller_{uuid.uuid4().hex[:10]}"
    made = [await _hosted_checkout(pay, seller) for _ in range(3)]
    first = await operator.ListPaymentOrders(pb.ListPaymentOrdersRequest(seller_account=seller, page_size=2))
    assert first.next_page_token
    rest = await operator.ListPaymentOrders(
        pb.ListPaymentOrdersRequest(seller_account=seller, page_size=2, page_token=first.next_page_token)
    )
    assert rest.next_page_token == ""
    listed = [o.payment_order_id for o in [*first.payment_orders, *rest.payment_orders]]
    # Created one after the other, so newest first is the reverse of creation.
    assert listed == made[::-1]
    executing = await operator.ListPaymentOrders(
        pb.ListPaymentOrdersRequest(seller_account=seller, states=[pb.PAYMENT_ORDER_STATE_EXECUTING])
    )
    assert len(executing.payment_orders) == 3
    failed = await operator.ListPaymentOrders(
        pb.ListPaymentOrdersRequest(seller_account=seller, states=[pb.PAYMENT_ORDER_STATE_FAILED])
    )
    assert list(failed.payment_orders) == []


@pytest.mark.parametrize(
    ("request_fields", "reason"),
    [
        ({"states": [pb.PAYMENT_ORDER_STATE_UNSPECIFIED]}, "INVALID_FILTER"),
        ({"states": [99]}, "INVALID_FILTER"),  # a number no state has (a newer client's, or garbage)
        ({"create_time_from": Timestamp(seconds=-(10**12))}, "INVALID_FILTER"),  # before year 1
        ({"create_time_from": Timestamp(seconds=200), "create_time_before": Timestamp(seconds=100)}, "INVALID_FILTER"),
        ({"checkout_id": "has space"}, "INVALID_ID"),
        ({"seller_account": "seller/1"}, "INVALID_SELLER_ACCOUNT"),
        ({"page_size": 1001}, "INVALID_PAGE_SIZE"),
        ({"page_token": "bm90IGEgdG9rZW4"}, "INVALID_PAGE_TOKEN"),
    ],
)  # fmt: skip
async def test_a_bad_listing_request_is_invalid_argument_with_its_reason(operator, request_fields, reason):
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await operator.ListPaymentOrders(pb.ListPaymentOrdersRequest(**request_fields))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    info = error_info(err.value)
    assert info is not None and info.reason == reason


async def test_refunds_of_an_unknown_order_are_not_found(operator):
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await operator.ListRefunds(pb.ListRefundsRequest(payment_order_id=f"po_{uuid.uuid4().hex[:10]}"))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    info = error_info(err.value)
    assert info is not None and info.reason == "PAYMENT_ORDER_NOT_FOUND"
