"""HandlePspEvent verifies the PSP's signature itself: an event sent straight to the payment service
without a valid one changes nothing, whoever can reach the port."""

from __future__ import annotations

import json
import time
import uuid

import grpc
import pytest
import sqlalchemy as sa

from psp_sim.webhooks import sign
from svckit.gen.ledger.v1 import ledger_service_pb2 as lpb
from svckit.gen.ledger.v1 import ledger_service_pb2_grpc as lpb_grpc
from svckit.gen.payments.v1 import payment_service_pb2 as pb
from svckit.gen.wallet.v1 import wallet_service_pb2 as wpb
from svckit.gen.wallet.v1 import wallet_service_pb2_grpc as wpb_grpc
from svckit.grpc_errors import error_info

STATE = pb.PaymentOrderState


def _checkout(payment_method: str = "") -> pb.CreatePaymentRequest:
    run = uuid.uuid4().hex[:8]
    return pb.CreatePaymentRequest(
        checkout_id=f"co_{run}",
        buyer=pb.BuyerInfo(buyer_id=f"buyer-{run}", email="ada@example.com"),
        payment_orders=[
            pb.PaymentOrderInput(
                payment_order_id=f"po_{run}_0",
                seller_account=f"seller-{run}",
                amount_minor=4200,
                currency="USD",
            )
        ],
        success_url="http://shop.test/ok",
        cancel_url="http://shop.test/cancel",
        payment_method=payment_method,
    )


def _event(kind: str, obj: dict) -> bytes:
    event = {"id": f"evt_{uuid.uuid4().hex[:24]}", "object": "event", "type": kind, "created": int(time.time()),
             "livemode": False, "data": {"object": obj}}  # fmt: skip
    return json.dumps(event).encode()


def _signatures(payload: bytes, secret: str) -> dict[str, str]:
    now = int(time.time())
    return {
        "no signature": "",
        "wrong secret": sign(payload.decode(), "whsec_" + "f" * 32, now),
        "another payload": sign('{"id": "evt_other"}', secret, now),
        "garbage": "t=1,v1=00",
        "older than the tolerance": sign(payload.decode(), secret, now - 4 * 86_400),
        "dated far ahead": sign(payload.decode(), secret, now + 4 * 86_400),
    }


async def _unchanged(pay, services, channels, request: pb.CreatePaymentRequest, history_before) -> None:
    order_id = request.payment_orders[0].payment_order_id
    seller = request.payment_orders[0].seller_account
    order = (
        await pay.stub.GetPaymentOrder(pb.GetPaymentOrderRequest(payment_order_id=order_id))
    ).payment_order
    assert order.state != STATE.PAYMENT_ORDER_STATE_SUCCESS
    history = await pay.stub.ListPaymentOrderHistory(
        pb.ListPaymentOrderHistoryRequest(payment_order_id=order_id)
    )
    assert history == history_before
    async with pay.handle.engine.connect() as conn:
        outbox = await conn.scalar(
            sa.text("SELECT count(*) FROM event_outbox WHERE aggregate_id = :o"), {"o": order_id}
        )
    assert outbox == 0  # nothing for the wallet and ledger updater to settle
    assert await _wallet_available(channels, seller) == 0
    assert await _payable(channels, seller) == 0


async def _wallet_available(channels, seller: str) -> int:
    wallet = wpb_grpc.WalletServiceStub(channels["wallet"])
    reply = await wallet.GetWallet(wpb.GetWalletRequest(seller_id=seller, currency="USD"))
    return reply.wallet.available.amount_minor


async def _payable(channels, seller: str) -> int:
    """The seller's ledger payable; 0 before its first posting (no account yet)."""
    ledger = lpb_grpc.LedgerServiceStub(channels["ledger"])
    try:
        reply = await ledger.GetBalance(lpb.GetBalanceRequest(account=f"liability:seller_payable:{seller}"))
    except grpc.aio.AioRpcError as exc:
        assert exc.code() == grpc.StatusCode.NOT_FOUND
        return 0
    return reply.balance_minor


async def _refused(pay, kind: str, payload: bytes, signature: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await pay.stub.HandlePspEvent(
            pb.HandlePspEventRequest(
                event_id=json.loads(payload)["id"],
                event_type=kind,
                payload=payload,
                stripe_signature=signature,
            )
        )
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    info = error_info(refused.value)
    assert info is not None and info.reason == "INVALID_SIGNATURE"
    assert pay.sim.webhook_secret not in (refused.value.details() or "")


async def test_a_forged_checkout_completed_leaves_the_order_unpaid(pay, services, channels):
    request = _checkout()
    reply = await pay.stub.CreatePayment(request, metadata=[("idempotency-key", uuid.uuid4().hex)])
    assert reply.payment_event.payment_orders[0].state == STATE.PAYMENT_ORDER_STATE_EXECUTING
    session = next(
        s for s in pay.psp_objects("checkout.session") if s["id"] in reply.payment_event.hosted_page_url
    )
    forged = dict(session, status="complete", payment_status="paid", payment_intent="pi_forged")
    payload = _event("checkout.session.completed", forged)
    order_id = request.payment_orders[0].payment_order_id
    before = await pay.stub.ListPaymentOrderHistory(
        pb.ListPaymentOrderHistoryRequest(payment_order_id=order_id)
    )
    for signature in _signatures(payload, pay.sim.webhook_secret).values():
        await _refused(pay, "checkout.session.completed", payload, signature)
    await _unchanged(pay, services, channels, request, before)


async def test_a_forged_payment_intent_succeeded_leaves_the_order_unpaid(pay, services, channels):
    # 3-D Secure pending: the order has its PaymentIntent and waits for the buyer.
    request = _checkout(payment_method="pm_card_authenticationRequired")
    reply = await pay.stub.CreatePayment(request, metadata=[("idempotency-key", uuid.uuid4().hex)])
    order = reply.payment_event.payment_orders[0]
    assert order.state == STATE.PAYMENT_ORDER_STATE_PENDING
    intent = next(pi for pi in pay.psp_objects("payment_intent") if pi["id"] == order.psp_reference)
    payload = _event("payment_intent.succeeded", dict(intent, status="succeeded", amount_received=4200))
    before = await pay.stub.ListPaymentOrderHistory(
        pb.ListPaymentOrderHistoryRequest(payment_order_id=order.payment_order_id)
    )
    for signature in _signatures(payload, pay.sim.webhook_secret).values():
        await _refused(pay, "payment_intent.succeeded", payload, signature)
    await _unchanged(pay, services, channels, request, before)


async def test_a_redelivery_whose_bytes_differ_is_a_replay_not_a_refusal(pay):
    # A PSP's redelivery of one event need not be byte-identical: Stripe's event carries
    # ``pending_webhooks``, which changes between deliveries, and another sender may order or space the
    # JSON otherwise. The event id identifies it; a refusal would be answered 4xx and redelivered for days.
    request = _checkout()
    reply = await pay.stub.CreatePayment(request, metadata=[("idempotency-key", uuid.uuid4().hex)])
    assert pay.pay_hosted(reply.payment_event.hosted_page_url).status_code == 303
    [completed] = [e for e in pay.events() if e["type"] == "checkout.session.completed"]
    first = json.dumps(completed)
    again = json.dumps({**completed, "pending_webhooks": 0}, indent=1, sort_keys=True)
    assert first != again
    answers = [
        await pay.stub.HandlePspEvent(
            pb.HandlePspEventRequest(
                event_id=completed["id"],
                event_type="checkout.session.completed",
                payload=payload.encode(),
                stripe_signature=sign(payload, pay.sim.webhook_secret, int(time.time())),
            )
        )
        for payload in (first, again)
    ]
    assert answers[0].applied and answers[1] == answers[0]


async def test_a_signed_event_is_applied_and_its_redelivery_with_a_fresh_signature_is_a_replay(pay):
    request = _checkout()
    reply = await pay.stub.CreatePayment(request, metadata=[("idempotency-key", uuid.uuid4().hex)])
    assert pay.pay_hosted(reply.payment_event.hosted_page_url).status_code == 303
    completed = [e for e in pay.events() if e["type"] == "checkout.session.completed"]
    assert len(completed) == 1
    payload = json.dumps(completed[0])
    now = int(time.time())
    answers = []
    for signed_at in (now - 10, now):  # the PSP signs each delivery afresh
        answers.append(
            await pay.stub.HandlePspEvent(
                pb.HandlePspEventRequest(
                    event_id=completed[0]["id"],
                    event_type="checkout.session.completed",
                    payload=payload.encode(),
                    stripe_signature=sign(payload, pay.sim.webhook_secret, signed_at),
                )
            )
        )
    assert answers[0].applied and answers[1] == answers[0]  # a replay, not IDEMPOTENCY_KEY_REUSED
    order_id = request.payment_orders[0].payment_order_id
    final = await pay.stub.GetPaymentOrder(pb.GetPaymentOrderRequest(payment_order_id=order_id))
    assert final.payment_order.state == STATE.PAYMENT_ORDER_STATE_SUCCESS
