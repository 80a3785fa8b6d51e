"""Direct mode charges the buyer once per checkout: one PaymentIntent for the cart, split into the
seller orders in our books. Through the payment service's gRPC API and the PSP simulator (stripe SDK)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
import stripe

from svckit.gen.payments.v1 import payment_service_pb2 as pb
from svckit.gen.wallet.v1 import wallet_service_pb2 as wpb
from svckit.gen.wallet.v1 import wallet_service_pb2_grpc as wpb_grpc
from tests.payments.books import balance, posted_for

STATE = pb.PaymentOrderState


def _cart(
    amounts: list[int], pm: str = "pm_card_visa", id_width: int = 0, ids_descending: bool = False
) -> pb.CreatePaymentRequest:
    run = uuid.uuid4().hex[:8]
    orders = [
        pb.PaymentOrderInput(
            payment_order_id=f"po_{run}_{i}".ljust(id_width, "x"),
            seller_account=f"s-{run}-{i}",
            amount_minor=amount,
            currency="USD",
        )
        for i, amount in enumerate(amounts)
    ]
    return pb.CreatePaymentRequest(
        checkout_id=f"co_{run}",
        buyer=pb.BuyerInfo(buyer_id=f"buyer-cart-{run}"),
        payment_orders=orders[::-1] if ids_descending else orders,
        payment_method=pm,
    )


def _md() -> list[tuple[str, str]]:
    return [("idempotency-key", uuid.uuid4().hex)]


def _ids(request: pb.CreatePaymentRequest) -> list[str]:
    return [o.payment_order_id for o in request.payment_orders]


def _intents_of(pay, checkout_id: str) -> list[dict[str, Any]]:
    """The checkout's PaymentIntents at the PSP, listed through the stripe SDK by our metadata."""
    client = pay.sim.client(max_network_retries=0)
    listed = [pi.to_dict() for pi in client.v1.payment_intents.list(params={"limit": 100}).auto_paging_iter()]
    return [pi for pi in listed if (pi.get("metadata") or {}).get("checkout_id") == checkout_id]


def _charges_of(pay, intent_id: str) -> list[dict[str, Any]]:
    return [
        c
        for c in pay.psp_objects("charge")
        if c.get("payment_intent") == intent_id and c.get("status") == "succeeded"
    ]


async def _orders(pay, checkout_id: str) -> list[pb.PaymentOrder]:
    reply = await pay.stub.GetCheckout(pb.GetCheckoutRequest(checkout_id=checkout_id))
    return sorted(reply.payment_event.payment_orders, key=lambda o: o.payment_order_id)


async def _settled(pay, order_ids: list[str], within_seconds: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + within_seconds
    while True:
        async with pay.handle.engine.connect() as conn:
            done = await conn.scalar(
                sa.text(
                    "SELECT count(*) FROM payment_orders WHERE payment_order_id = ANY(:ids)"
                    " AND wallet_updated AND ledger_updated"
                ),
                {"ids": order_ids},
            )
        if done == len(order_ids):
            return
        assert asyncio.get_running_loop().time() < deadline, f"only {done}/{len(order_ids)} settled"
        await asyncio.sleep(0.1)


async def _wallet(channels, seller: str) -> int:
    stub = wpb_grpc.WalletServiceStub(channels["wallet"])
    reply = await stub.GetWallet(wpb.GetWalletRequest(seller_id=seller, currency="USD"))
    return reply.wallet.available.amount_minor


async def test_a_three_seller_cart_is_one_payment_intent_and_three_settled_orders(pay, channels, services):
    request = _cart([1000, 2550, 399])
    reply = await pay.stub.CreatePayment(request, metadata=_md())
    orders = sorted(reply.payment_event.payment_orders, key=lambda o: o.payment_order_id)
    assert [o.state for o in orders] == [STATE.PAYMENT_ORDER_STATE_SUCCESS] * 3

    (intent,) = _intents_of(pay, request.checkout_id)
    assert (intent["amount"], intent["currency"], intent["status"]) == (3949, "usd", "succeeded")
    assert intent["metadata"]["payment_order_ids"].split(",") == _ids(request)
    assert {o.psp_reference for o in orders} == {intent["id"]}
    assert len(_charges_of(pay, intent["id"])) == 1  # one charge on the buyer's statement

    await _settled(pay, _ids(request))
    sellers = [o.seller_account for o in request.payment_orders]
    assert [await _wallet(channels, s) for s in sellers] == [900, 2295, 359]  # net of 10 %, half-up
    assert [o.commission_minor for o in orders] == [100, 255, 40]
    posted = await posted_for(services, _ids(request))
    assert posted["asset:psp_receivable:stripe/USD"] == 3949
    assert posted["revenue:commission/USD"] == -395
    for seller, net in zip(sellers, [900, 2295, 359], strict=True):
        assert posted[f"liability:seller_payable:{seller}/USD"] == -net
        assert await balance(channels, f"liability:seller_payable:{seller}/USD") == net
    for order_id in _ids(request):  # each order keeps its own history
        history = await pay.stub.ListPaymentOrderHistory(
            pb.ListPaymentOrderHistoryRequest(payment_order_id=order_id)
        )
        assert [t.to_state for t in history.transitions] == [
            STATE.PAYMENT_ORDER_STATE_NOT_STARTED,
            STATE.PAYMENT_ORDER_STATE_SUCCESS,
        ]


async def test_three_d_secure_is_one_challenge_for_the_cart(pay):
    request = _cart([700, 800, 900], pm="pm_card_authenticationRequired")
    reply = await pay.stub.CreatePayment(request, metadata=_md())
    orders = reply.payment_event.payment_orders
    assert {o.state for o in orders} == {STATE.PAYMENT_ORDER_STATE_PENDING}
    (challenge,) = {o.next_action_url for o in orders}  # one URL for the whole cart
    assert "/3ds/" in challenge
    httpx.post(challenge, data={"action": "complete"}, timeout=10)
    await pay.deliver_all()
    after = await _orders(pay, request.checkout_id)
    assert {o.state for o in after} == {STATE.PAYMENT_ORDER_STATE_SUCCESS}
    (intent,) = _intents_of(pay, request.checkout_id)
    assert (intent["amount"], intent["status"]) == (2400, "succeeded")
    assert {o.psp_reference for o in after} == {intent["id"]}

    failing = _cart([300, 400], pm="pm_card_authenticationRequired")
    reply = await pay.stub.CreatePayment(failing, metadata=_md())
    httpx.post(reply.payment_event.payment_orders[0].next_action_url, data={"action": "fail"}, timeout=10)
    await pay.deliver_all()
    failed = await _orders(pay, failing.checkout_id)
    assert {o.state for o in failed} == {STATE.PAYMENT_ORDER_STATE_FAILED}
    assert all(o.failure_code for o in failed)


async def test_a_declined_cart_fails_every_order_with_the_psp_code(pay):
    request = _cart([500, 600, 700], pm="pm_card_visa_chargeDeclinedInsufficientFunds")
    reply = await pay.stub.CreatePayment(request, metadata=_md())
    orders = reply.payment_event.payment_orders
    assert {(o.state, o.failure_code) for o in orders} == {
        (STATE.PAYMENT_ORDER_STATE_FAILED, "insufficient_funds")
    }
    (intent,) = _intents_of(pay, request.checkout_id)
    assert {o.psp_reference for o in orders} == {intent["id"]}
    assert _charges_of(pay, intent["id"]) == []


async def test_psp_unavailable_on_create_leaves_every_order_unknown_and_the_janitor_charges_once(pay):
    # The PSP charges but every answer is lost: the orders must be UNKNOWN, never FAILED.
    pay.sim.admin.set_faults(
        [
            {
                "kind": "error_after_commit",
                "path_prefix": "/v1/payment_intents",
                "method": "POST",
                "should_retry": False,
            }
        ]
    )
    # Ids listed against their sort order: the janitor reads the orders in key order, and its
    # replay must still send the first attempt's parameters.
    request = _cart([990, 1010, 2000], ids_descending=True)
    reply = await pay.stub.CreatePayment(request, metadata=_md())
    assert {o.state for o in reply.payment_event.payment_orders} == {STATE.PAYMENT_ORDER_STATE_UNKNOWN}
    pay.sim.admin.clear_faults()
    await pay.service.janitor_pass()
    orders = await _orders(pay, request.checkout_id)
    assert {o.state for o in orders} == {STATE.PAYMENT_ORDER_STATE_SUCCESS}
    (intent,) = _intents_of(pay, request.checkout_id)  # the janitor's create replayed the first
    assert intent["amount"] == 4000
    assert {o.psp_reference for o in orders} == {intent["id"]}
    assert len(_charges_of(pay, intent["id"])) == 1
    # Both attempts used the checkout's own key: it is taken, for this cart's amount only.
    with pytest.raises(stripe.IdempotencyError):
        pay.sim.client(max_network_retries=0).v1.payment_intents.create(
            params={"amount": 1, "currency": "usd", "payment_method": "pm_card_visa", "confirm": True},
            options={"idempotency_key": f"{request.checkout_id}:intent"},
        )
    assert len(_intents_of(pay, request.checkout_id)) == 1


async def test_refunds_of_two_orders_refund_their_parts_of_the_one_charge(pay):
    request = _cart([1000, 2000, 3000])
    await pay.stub.CreatePayment(request, metadata=_md())
    first, second, third = _ids(request)
    part = await pay.stub.CreateRefund(
        pb.CreateRefundRequest(payment_order_id=first, amount_minor=250), metadata=_md()
    )
    assert (part.refund.state, part.payment_order.state) == (
        pb.REFUND_STATE_SUCCEEDED,
        STATE.PAYMENT_ORDER_STATE_PARTIALLY_REFUNDED,
    )
    full = await pay.stub.CreateRefund(pb.CreateRefundRequest(payment_order_id=second), metadata=_md())
    assert (full.refund.amount_minor, full.payment_order.state) == (2000, STATE.PAYMENT_ORDER_STATE_REFUNDED)

    (intent,) = _intents_of(pay, request.checkout_id)
    refunds = [r for r in pay.psp_objects("refund") if r["payment_intent"] == intent["id"]]
    assert sorted(r["amount"] for r in refunds) == [250, 2000]
    orders = {o.payment_order_id: o for o in await _orders(pay, request.checkout_id)}
    assert (orders[first].refunded_minor, orders[second].refunded_minor) == (250, 2000)
    assert (orders[third].state, orders[third].refunded_minor) == (STATE.PAYMENT_ORDER_STATE_SUCCESS, 0)
    # The untouched order can still be refunded in full: its part of the charge is intact.
    rest = await pay.stub.CreateRefund(pb.CreateRefundRequest(payment_order_id=third), metadata=_md())
    assert (rest.refund.amount_minor, rest.payment_order.state) == (3000, STATE.PAYMENT_ORDER_STATE_REFUNDED)
    assert sum(r["amount"] for r in pay.psp_objects("refund") if r["payment_intent"] == intent["id"]) == 5250


async def test_a_cart_held_for_review_is_charged_once_when_approved(pay):
    # risk_review_above_minor is 900,000 in these tests: the cart as a whole is held.
    request = _cart([500_000, 450_000])
    reply = await pay.stub.CreatePayment(request, metadata=_md())
    assert {o.state for o in reply.payment_event.payment_orders} == {STATE.PAYMENT_ORDER_STATE_PENDING}
    assert _intents_of(pay, request.checkout_id) == []
    await pay.stub.ReviewPaymentOrder(
        pb.ReviewPaymentOrderRequest(
            payment_order_id=_ids(request)[1], decision=pb.REVIEW_DECISION_APPROVE, reviewer="ops"
        ),
        metadata=_md(),
    )
    orders = await _orders(pay, request.checkout_id)
    assert {o.state for o in orders} == {STATE.PAYMENT_ORDER_STATE_SUCCESS}
    (intent,) = _intents_of(pay, request.checkout_id)
    assert intent["amount"] == 950_000
    assert {o.psp_reference for o in orders} == {intent["id"]}


async def test_order_ids_that_do_not_fit_the_metadata_leave_the_checkout_id_and_still_find_every_order(pay):
    # 12 ids of 60 characters are more than Stripe's 500 per metadata value.
    request = _cart([100] * 12, pm="pm_card_authenticationRequired", id_width=60)
    reply = await pay.stub.CreatePayment(request, metadata=_md())
    (intent,) = _intents_of(pay, request.checkout_id)
    assert dict(intent["metadata"]) == {"checkout_id": request.checkout_id}
    assert intent["amount"] == 1200
    httpx.post(reply.payment_event.payment_orders[0].next_action_url, data={"action": "complete"}, timeout=10)
    succeeded = [
        e
        for e in pay.events()
        if e["type"] == "payment_intent.succeeded" and e["data"]["object"]["id"] == intent["id"]
    ]
    replies = await pay.deliver(succeeded)
    assert sorted(replies[0].payment_order_ids) == sorted(_ids(request))
    assert {o.state for o in await _orders(pay, request.checkout_id)} == {STATE.PAYMENT_ORDER_STATE_SUCCESS}
