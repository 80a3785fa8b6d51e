"""HandlePspEvent takes events from the gateway only: it alone verified the PSP's signature."""

from __future__ import annotations

import json
import uuid

import grpc
import pytest

from svckit.gen.payments.v1 import payment_service_pb2 as pb
from svckit.gen.payments.v1 import payment_service_pb2_grpc as pb_grpc
from svckit.grpc_errors import error_info

STATE = pb.PaymentOrderState


@pytest.mark.parametrize("caller", ["wallet", "operator", "payment"])
async def test_a_psp_event_from_another_identity_is_refused_and_the_order_stays_unpaid(infra, pay, caller):
    run = uuid.uuid4().hex[:8]
    order_id = f"po_{run}"
    created = await pay.stub.CreatePayment(
        pb.CreatePaymentRequest(
            checkout_id=f"co_{run}",
            buyer=pb.BuyerInfo(buyer_id=f"buyer-{run}"),
            payment_orders=[
                pb.PaymentOrderInput(
                    payment_order_id=order_id, seller_account="seller-x", amount_minor=1500, currency="USD"
                )
            ],
            success_url="http://shop.test/ok",
            cancel_url="http://shop.test/cancel",
        ),
        metadata=[("idempotency-key", run)],
    )
    assert pay.pay_hosted(created.payment_event.hosted_page_url).status_code == 303
    # The genuine events of that payment, as the PSP sent them: only the caller is wrong.
    events = [e for e in pay.events() if run in json.dumps(e)]
    assert events

    async with infra.channel(pay.handle.address, caller) as channel:
        forged = pb_grpc.PaymentServiceStub(channel)
        for event in events:
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await forged.HandlePspEvent(
                    pb.HandlePspEventRequest(
                        event_id=event["id"], event_type=event["type"], payload=json.dumps(event).encode()
                    )
                )
            assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
            assert error_info(err.value).reason == "CALLER_NOT_ALLOWED"
    order = (
        await pay.stub.GetPaymentOrder(pb.GetPaymentOrderRequest(payment_order_id=order_id))
    ).payment_order
    assert order.state == STATE.PAYMENT_ORDER_STATE_EXECUTING

    # From the gateway the same events pay the order: the refusal above was the caller, nothing else.
    await pay.deliver(events)
    order = (
        await pay.stub.GetPaymentOrder(pb.GetPaymentOrderRequest(payment_order_id=order_id))
    ).payment_order
    assert order.state == STATE.PAYMENT_ORDER_STATE_SUCCESS
