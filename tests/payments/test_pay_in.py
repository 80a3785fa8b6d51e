"""Pay-in through the real payment service, the PSP simulator (stripe SDK) and PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from types import SimpleNamespace

import grpc
import httpx
import pytest
import sqlalchemy as sa

from payment_svc import bootstrap
from payment_svc.config import PaymentSettings
from payment_svc.psp_events import handles_event_type
from psp_sim.testing import DEFAULT_API_KEY
from svckit.gen.payments.v1 import payment_service_pb2 as pb
from svckit.gen.payments.v1 import payment_service_pb2_grpc as pb_grpc
from svckit.grpc_errors import error_info
from svckit.runtime import start_service

STATE = pb.PaymentOrderState


def _ids(n: int = 3) -> tuple[str, list[str]]:
    run = uuid.uuid4().hex[:8]
    return f"co_{run}", [f"po_{run}_{i}" for i in range(n)]


def _request(
    checkout: str,
    orders: list[str],
    amounts=(1000, 2550, 399),
    payment_method: str = "",
    buyer: str = "buyer-1",
    currency: str = "USD",
    sellers=None,
) -> pb.CreatePaymentRequest:
    sellers = sellers or [f"seller-{i}" for i in range(len(orders))]
    return pb.CreatePaymentRequest(
        checkout_id=checkout,
        buyer=pb.BuyerInfo(buyer_id=buyer, email="ada@example.com"),
        payment_orders=[
            pb.PaymentOrderInput(payment_order_id=o, seller_account=s, amount_minor=a, currency=currency)
            for o, s, a in zip(orders, sellers, amounts, strict=False)
        ],
        success_url="http://shop.test/ok?session={CHECKOUT_SESSION_ID}",
        cancel_url="http://shop.test/cancel",
        payment_method=payment_method,
    )


def _md(key: str | None = None) -> list[tuple[str, str]]:
    return [("idempotency-key", key or uuid.uuid4().hex)]


async def _order(pay, order_id: str) -> pb.PaymentOrder:
    return (
        await pay.stub.GetPaymentOrder(pb.GetPaymentOrderRequest(payment_order_id=order_id))
    ).payment_order


async def test_direct_mode_three_sellers_succeed_with_commission(pay):
    checkout, orders = _ids()
    reply = await pay.stub.CreatePayment(
        _request(checkout, orders, payment_method="pm_card_visa"), metadata=_md()
    )
    event = reply.payment_event
    assert event.mode == pb.PAYMENT_MODE_DIRECT
    assert [o.state for o in event.payment_orders] == [STATE.PAYMENT_ORDER_STATE_SUCCESS] * 3
    by_id = {o.payment_order_id: o for o in event.payment_orders}
    assert by_id[orders[0]].commission_minor == 100
    assert by_id[orders[1]].commission_minor == 255
    assert by_id[orders[2]].commission_minor == 40  # 39.9 rounds half-up
    (intent,) = pay.psp_objects("payment_intent")  # one charge for the cart
    assert intent["metadata"] == {"checkout_id": checkout, "payment_order_ids": ",".join(orders)}
    assert {o.psp_reference for o in event.payment_orders} == {intent["id"]}
    history = await pay.stub.ListPaymentOrderHistory(
        pb.ListPaymentOrderHistoryRequest(payment_order_id=orders[0])
    )
    assert (history.transitions[0].to_state, history.transitions[0].cause) == (
        STATE.PAYMENT_ORDER_STATE_NOT_STARTED,
        "created",
    )
    assert history.transitions[-1].to_state == STATE.PAYMENT_ORDER_STATE_SUCCESS
    assert history.transitions[-1].from_state == STATE.PAYMENT_ORDER_STATE_NOT_STARTED
    assert len(history.transitions) == 2


@pytest.mark.parametrize(
    ("pm", "code"),
    [
        ("pm_card_visa_chargeDeclinedInsufficientFunds", "insufficient_funds"),
        ("pm_card_visa_chargeDeclined", "generic_decline"),
        ("pm_card_radarBlock", "fraudulent"),
    ],
)
async def test_direct_mode_declines_fail_with_the_psp_code(pay, pm, code):
    checkout, orders = _ids(1)
    reply = await pay.stub.CreatePayment(
        _request(checkout, orders, amounts=(500,), payment_method=pm), metadata=_md()
    )
    order = reply.payment_event.payment_orders[0]
    assert order.state == STATE.PAYMENT_ORDER_STATE_FAILED
    assert order.failure_code == code
    assert order.failure_message
    history = await pay.stub.ListPaymentOrderHistory(
        pb.ListPaymentOrderHistoryRequest(payment_order_id=orders[0])
    )
    assert history.transitions[-1].detail  # an operator can read why it failed


async def test_three_d_secure_pass_and_fail(pay):
    passing, failing = _ids(1), _ids(1)
    urls = []
    for checkout, orders in (passing, failing):
        reply = await pay.stub.CreatePayment(
            _request(checkout, orders, amounts=(700,), payment_method="pm_card_authenticationRequired"),
            metadata=_md(),
        )
        (order,) = reply.payment_event.payment_orders
        assert order.state == STATE.PAYMENT_ORDER_STATE_PENDING
        assert "/3ds/" in order.next_action_url
        urls.append(order.next_action_url)
    httpx.post(urls[0], data={"action": "complete"}, timeout=10)
    httpx.post(urls[1], data={"action": "fail"}, timeout=10)
    await pay.deliver_all()
    assert (await _order(pay, passing[1][0])).state == STATE.PAYMENT_ORDER_STATE_SUCCESS
    failed = await _order(pay, failing[1][0])
    assert failed.state == STATE.PAYMENT_ORDER_STATE_FAILED
    assert failed.failure_code


async def test_hosted_mode_form_post_three_sellers(pay):
    checkout, orders = _ids()
    reply = await pay.stub.CreatePayment(_request(checkout, orders), metadata=_md())
    event = reply.payment_event
    assert event.mode == pb.PAYMENT_MODE_HOSTED
    assert event.hosted_page_url.startswith(pay.sim.base_url)
    assert {o.state for o in event.payment_orders} == {STATE.PAYMENT_ORDER_STATE_EXECUTING}
    paid = pay.pay_hosted(event.hosted_page_url)
    assert paid.status_code == 303
    assert paid.headers["location"].startswith("http://shop.test/ok?session=cs_")
    await pay.deliver_all()
    final = (await pay.stub.GetCheckout(pb.GetCheckoutRequest(checkout_id=checkout))).payment_event
    assert {o.state for o in final.payment_orders} == {STATE.PAYMENT_ORDER_STATE_SUCCESS}
    assert len({o.psp_reference for o in final.payment_orders}) == 1  # one PaymentIntent for the whole cart
    assert sum(pi["amount"] for pi in pay.psp_objects("payment_intent")) == 1000 + 2550 + 399


async def test_hosted_decline_is_not_final_until_the_session_expires(pay):
    checkout, orders = _ids(1)
    event = (
        await pay.stub.CreatePayment(_request(checkout, orders, amounts=(1200,)), metadata=_md())
    ).payment_event
    assert pay.pay_hosted(event.hosted_page_url, card="4000000000009995").status_code == 402
    await pay.deliver_all()
    assert (await _order(pay, orders[0])).state == STATE.PAYMENT_ORDER_STATE_EXECUTING
    pay.sim.client().v1.checkout.sessions.expire(pay.psp_objects("checkout.session")[0]["id"])
    await pay.deliver_all()
    order = await _order(pay, orders[0])
    assert order.state == STATE.PAYMENT_ORDER_STATE_FAILED
    assert order.failure_code == "expired"


async def test_fifty_concurrent_identical_requests_register_and_charge_once(pay):
    checkout, orders = _ids(2)
    request = _request(checkout, orders, amounts=(1500, 2500), payment_method="pm_card_visa")
    key = uuid.uuid4().hex

    async def call():
        try:
            return await pay.stub.CreatePayment(request, metadata=_md(key))
        except grpc.aio.AioRpcError as exc:
            return exc

    results = await asyncio.gather(*(call() for _ in range(50)))
    ok = [r for r in results if isinstance(r, pb.CreatePaymentResponse)]
    busy = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert ok
    assert all(error_info(e).reason == "IDEMPOTENCY_KEY_IN_USE" for e in busy)
    retried = await asyncio.gather(*(pay.stub.CreatePayment(request, metadata=_md(key)) for _ in busy))
    assert all(r == ok[0] for r in [*ok, *retried])
    intents = pay.psp_objects("payment_intent")
    assert len(intents) == 1  # one for the cart
    charges = [c for c in pay.psp_objects("charge") if c.get("status") == "succeeded"]
    assert len(charges) == 1


async def test_same_key_with_a_different_body_is_refused(pay):
    checkout, orders = _ids(1)
    key = uuid.uuid4().hex
    await pay.stub.CreatePayment(
        _request(checkout, orders, amounts=(100,), payment_method="pm_card_visa"), metadata=_md(key)
    )
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await pay.stub.CreatePayment(
            _request(checkout, orders, amounts=(101,), payment_method="pm_card_visa"), metadata=_md(key)
        )
    assert error_info(err.value).reason == "IDEMPOTENCY_KEY_REUSED"


async def test_reusing_a_checkout_or_order_id_under_another_key_is_refused_and_stores_nothing(pay):
    checkout, orders = _ids(1)
    await pay.stub.CreatePayment(
        _request(checkout, orders, amounts=(100,), payment_method="pm_card_visa"), metadata=_md()
    )
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await pay.stub.CreatePayment(
            _request(checkout, orders, amounts=(100,), payment_method="pm_card_visa"), metadata=_md()
        )
    assert error_info(err.value).reason == "CHECKOUT_ALREADY_EXISTS"
    other_checkout, _ = _ids(1)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await pay.stub.CreatePayment(
            _request(other_checkout, orders, amounts=(100,), payment_method="pm_card_visa"), metadata=_md()
        )
    assert error_info(err.value).reason == "PAYMENT_ORDER_ALREADY_EXISTS"
    async with pay.handle.engine.connect() as conn:
        stored = await conn.scalar(
            sa.text("SELECT count(*) FROM payment_events WHERE checkout_id = :c"), {"c": other_checkout}
        )
    assert stored == 0


async def test_charge_then_dropped_response_is_retried_with_the_same_key_and_charged_once(pay):
    pay.sim.admin.set_faults(
        [{"kind": "drop_after_commit", "path_prefix": "/v1/payment_intents", "method": "POST", "count": 1}]
    )
    checkout, orders = _ids(1)
    reply = await pay.stub.CreatePayment(
        _request(checkout, orders, amounts=(4200,), payment_method="pm_card_visa"), metadata=_md()
    )
    assert reply.payment_event.payment_orders[0].state == STATE.PAYMENT_ORDER_STATE_SUCCESS
    assert len(pay.sim.admin.injected_faults("drop_after_commit")) == 1
    assert len(pay.psp_objects("payment_intent")) == 1
    assert len([c for c in pay.psp_objects("charge") if c.get("status") == "succeeded"]) == 1


async def test_a_create_whose_answer_was_lost_and_whose_key_the_psp_forgot_before_the_retry_charges_once(pay):
    # Chaos seed 324: the PSP made the PaymentIntent, the answer was lost, and the PSP's clock passed the
    # key's 24 h before the retry half a second later: the SDK's own retry made a second charge.
    pay.sim.admin.set_faults(
        [
            {
                "kind": "drop_after_commit",
                "path_prefix": "/v1/payment_intents",
                "method": "POST",
                "count": 1,
                "advance_seconds": 2 * 86_400,
            }
        ]
    )
    checkout, orders = _ids(2)
    reply = await pay.stub.CreatePayment(
        _request(checkout, orders, amounts=(700, 300), payment_method="pm_card_visa"), metadata=_md()
    )
    assert {o.state for o in reply.payment_event.payment_orders} == {STATE.PAYMENT_ORDER_STATE_SUCCESS}
    intents = [
        pi for pi in pay.psp_objects("payment_intent") if pi["metadata"].get("checkout_id") == checkout
    ]
    assert [pi["amount"] for pi in intents] == [1000]
    assert {o.psp_reference for o in reply.payment_event.payment_orders} == {intents[0]["id"]}


async def test_a_create_whose_answer_was_lost_is_not_resent_while_the_psp_cannot_be_asked(pay):
    # The look-up before a resend fails too: sending blind could charge twice (the key is forgotten), so
    # the order is left unknown for the janitor, and the PSP holds the one intent it made.
    pay.sim.admin.set_faults(
        [
            {
                "kind": "drop_after_commit",
                "path_prefix": "/v1/payment_intents",
                "method": "POST",
                "count": 1,
                "advance_seconds": 2 * 86_400,
            },
            {
                "kind": "http_500",
                "path_prefix": "/v1/payment_intents",
                "method": "GET",
                "should_retry": False,
            },
        ]
    )
    checkout, orders = _ids(1)
    try:
        reply = await pay.stub.CreatePayment(
            _request(checkout, orders, amounts=(1500,), payment_method="pm_card_visa"), metadata=_md()
        )
    finally:
        pay.sim.admin.clear_faults()
    assert reply.payment_event.payment_orders[0].state == STATE.PAYMENT_ORDER_STATE_UNKNOWN
    intents = [
        pi for pi in pay.psp_objects("payment_intent") if pi["metadata"].get("checkout_id") == checkout
    ]
    assert len(intents) == 1
    await pay.service.janitor_pass()  # the PSP answers again: the janitor finds the one intent
    order = await _order(pay, orders[0])
    assert order.state == STATE.PAYMENT_ORDER_STATE_SUCCESS and order.psp_reference == intents[0]["id"]


async def test_psp_timeout_leaves_the_outcome_unknown_and_the_janitor_settles_it(pay):
    # The PSP charges but every answer is lost: the order must be UNKNOWN, never FAILED.
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
    checkout, orders = _ids(1)
    reply = await pay.stub.CreatePayment(
        _request(checkout, orders, amounts=(990,), payment_method="pm_card_visa"), metadata=_md()
    )
    assert reply.payment_event.payment_orders[0].state == STATE.PAYMENT_ORDER_STATE_UNKNOWN
    pay.sim.admin.clear_faults()
    await pay.service.janitor_pass()
    order = await _order(pay, orders[0])
    assert order.state == STATE.PAYMENT_ORDER_STATE_SUCCESS
    assert (
        len(pay.psp_objects("payment_intent")) == 1
    )  # the re-asked create replayed, it did not charge again


async def test_a_create_resent_after_the_psp_forgot_its_key_finds_the_first_charge_and_charges_once(pay):
    # Chaos seed 58: the PSP charged, our answer was lost, and by the time the janitor resent the create the
    # PSP no longer knew its idempotency key (Stripe keeps keys for 24 hours): a second charge.
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
    checkout, orders = _ids(1)
    reply = await pay.stub.CreatePayment(
        _request(checkout, orders, amounts=(1250,), payment_method="pm_card_visa"), metadata=_md()
    )
    assert reply.payment_event.payment_orders[0].state == STATE.PAYMENT_ORDER_STATE_UNKNOWN
    pay.sim.admin.clear_faults()
    pay.sim.admin.advance(days=2)  # past the PSP's key lifetime
    await pay.service.janitor_pass()
    order = await _order(pay, orders[0])
    assert order.state == STATE.PAYMENT_ORDER_STATE_SUCCESS
    intents = [
        pi for pi in pay.psp_objects("payment_intent") if pi["metadata"].get("checkout_id") == checkout
    ]
    assert len(intents) == 1
    assert order.psp_reference == intents[0]["id"]


async def test_two_janitors_at_once_ask_about_each_uncertain_order_once(pay):
    # Two replicas' janitors passing at the same moment: each uncertain order is claimed by one of them.
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
    checkout, mine = _ids(3)
    reply = await pay.stub.CreatePayment(
        _request(checkout, mine, amounts=(1234, 567, 890), payment_method="pm_card_visa"), metadata=_md()
    )
    assert {o.state for o in reply.payment_event.payment_orders} == {STATE.PAYMENT_ORDER_STATE_UNKNOWN}
    # The PSP keeps failing (and says not to retry) for the passes, so every order stays uncertain and is
    # rescheduled by whichever janitor looked at it: its attempt count says how many did.
    pay.sim.admin.set_faults(
        [{"kind": "http_500", "path_prefix": "/v1/payment_intents", "method": "GET", "should_retry": False}]
    )
    try:
        await asyncio.gather(pay.service.janitor_pass(), pay.service.janitor_pass())
    finally:
        pay.sim.admin.clear_faults()
    async with pay.handle.engine.connect() as conn:
        attempts = dict(
            (
                await conn.execute(
                    sa.text(
                        "SELECT payment_order_id, janitor_attempts FROM payment_orders"
                        " WHERE payment_order_id = ANY(:ids)"
                    ),
                    {"ids": mine},
                )
            ).all()
        )
    assert attempts == dict.fromkeys(mine, 1)


async def test_duplicate_and_out_of_order_webhooks_end_in_the_right_state(pay):
    checkout, orders = _ids(2)
    event = (
        await pay.stub.CreatePayment(_request(checkout, orders, amounts=(300, 400)), metadata=_md())
    ).payment_event
    pay.pay_hosted(event.hosted_page_url, card="4000000000009995")  # a declined attempt first
    pay.pay_hosted(event.hosted_page_url)  # then a good card
    events = pay.events()
    # Newest first, each twice: the late "payment_failed" must not undo the success.
    replies = await pay.deliver(list(reversed(events)) * 2)
    assert any(r.applied for r in replies)
    final = (await pay.stub.GetCheckout(pb.GetCheckoutRequest(checkout_id=checkout))).payment_event
    assert {o.state for o in final.payment_orders} == {STATE.PAYMENT_ORDER_STATE_SUCCESS}
    history = await pay.stub.ListPaymentOrderHistory(
        pb.ListPaymentOrderHistoryRequest(payment_order_id=orders[0])
    )
    assert [t.to_state for t in history.transitions].count(STATE.PAYMENT_ORDER_STATE_SUCCESS) == 1


async def test_event_before_registration_is_recorded_still_ends_right(pay):
    # The PSP's success event is applied while our own record still says NOT_STARTED.
    checkout, orders = _ids(1)
    async with pay.handle.engine.begin() as conn:
        await conn.execute(
            sa.text(
                "INSERT INTO payment_events (checkout_id, buyer_id, mode, currency, total_minor, payment_method, idempotency_key)"
                " VALUES (:c, 'b', 'DIRECT', 'USD', 777, 'pm_card_visa', 'k-early')"
            ),
            {"c": checkout},
        )
        await conn.execute(
            sa.text(
                "INSERT INTO payment_orders (payment_order_id, checkout_id, seller_account, amount_minor, currency, state)"
                " VALUES (:o, :c, 'seller-x', 777, 'USD', 'NOT_STARTED')"
            ),
            {"o": orders[0], "c": checkout},
        )
    pi = pay.sim.client().v1.payment_intents.create(
        params={
            "amount": 777,
            "currency": "usd",
            "payment_method": "pm_card_visa",
            "confirm": True,
            "payment_method_types": ["card"],
            "metadata": {"payment_order_ids": orders[0], "checkout_id": checkout},
        },
        options={"idempotency_key": f"{checkout}:intent"},
    )
    succeeded = [e for e in pay.events() if e["type"] == "payment_intent.succeeded"]
    replies = await pay.deliver(succeeded * 2)  # and once more, redelivered
    assert [r.applied for r in replies] == [True, False]
    assert list(replies[0].payment_order_ids) == [orders[0]]
    order = await _order(pay, orders[0])
    assert order.state == STATE.PAYMENT_ORDER_STATE_SUCCESS
    assert order.psp_reference == pi.id
    assert order.commission_minor == 78  # 10 % of 777, half-up
    await pay.service.drive(checkout)  # our own registration finishes late: same key, same PaymentIntent
    order = await _order(pay, orders[0])
    assert order.state == STATE.PAYMENT_ORDER_STATE_SUCCESS
    assert order.psp_reference == pi.id
    assert len(pay.psp_objects("payment_intent")) == 1
    history = await pay.stub.ListPaymentOrderHistory(
        pb.ListPaymentOrderHistoryRequest(payment_order_id=orders[0])
    )
    assert [(t.from_state, t.to_state) for t in history.transitions][-1] == (
        STATE.PAYMENT_ORDER_STATE_NOT_STARTED,
        STATE.PAYMENT_ORDER_STATE_SUCCESS,
    )
    assert [t.to_state for t in history.transitions].count(STATE.PAYMENT_ORDER_STATE_SUCCESS) == 1
    async with pay.handle.engine.connect() as conn:
        settlement_events = await conn.scalar(
            sa.text("SELECT count(*) FROM event_outbox WHERE aggregate_id = :o"), {"o": orders[0]}
        )
    assert settlement_events == 1


async def test_our_confirm_answer_after_the_webhook_recorded_the_success_changes_nothing(pay):
    # The race the one-statement move must lose gracefully: the PSP's success event is applied while
    # our create-and-confirm call is still in flight; when its answer arrives, the order is no longer
    # in a state that can move to SUCCESS, so nothing is moved, recorded or settled a second time.
    checkout, orders = _ids(1)
    await pay.stub.CreatePayment(
        _request(checkout, orders, amounts=(860,), payment_method="pm_card_visa"), metadata=_md()
    )
    async with pay.handle.engine.connect() as conn:
        event = (
            await conn.execute(
                sa.text("SELECT * FROM payment_events WHERE checkout_id = :c"), {"c": checkout}
            )
        ).one()
        order = (
            await conn.execute(
                sa.text("SELECT * FROM payment_orders WHERE payment_order_id = :o"), {"o": orders[0]}
            )
        ).one()
    # The order as read before the PSP call.
    snapshot = SimpleNamespace(**{**order._asdict(), "state": "NOT_STARTED", "psp_reference": None})
    (current,) = await pay.service.checkout.register_intent(event, [snapshot], [snapshot])
    assert (current.state, current.payment_order_id) == ("SUCCESS", orders[0])  # found, not moved
    history = await pay.stub.ListPaymentOrderHistory(
        pb.ListPaymentOrderHistoryRequest(payment_order_id=orders[0])
    )
    assert [t.to_state for t in history.transitions].count(STATE.PAYMENT_ORDER_STATE_SUCCESS) == 1
    async with pay.handle.engine.connect() as conn:
        settlement_events = await conn.scalar(
            sa.text("SELECT count(*) FROM event_outbox WHERE aggregate_id = :o"), {"o": orders[0]}
        )
    assert settlement_events == 1
    assert len(pay.psp_objects("payment_intent")) == 1


async def test_dropped_webhooks_are_resolved_by_the_janitor(pay):
    checkout, orders = _ids(2)
    event = (
        await pay.stub.CreatePayment(_request(checkout, orders, amounts=(111, 222)), metadata=_md())
    ).payment_event
    assert pay.pay_hosted(event.hosted_page_url).status_code == 303
    # No event is delivered at all; the janitor asks the PSP.
    await pay.service.janitor_pass()
    final = (await pay.stub.GetCheckout(pb.GetCheckoutRequest(checkout_id=checkout))).payment_event
    assert {o.state for o in final.payment_orders} == {STATE.PAYMENT_ORDER_STATE_SUCCESS}


async def test_risk_decline_and_review(pay):
    checkout, orders = _ids(1)
    declined = await pay.stub.CreatePayment(
        _request(checkout, orders, amounts=(100,), payment_method="pm_card_visa", buyer="blocked-buyer"),
        metadata=_md(),
    )
    order = declined.payment_event.payment_orders[0]
    assert (order.state, order.failure_code) == (STATE.PAYMENT_ORDER_STATE_FAILED, "RISK_DECLINED")
    assert pay.psp_objects("payment_intent") == []  # no PSP call for a declined checkout

    for decision, expected in (
        (pb.REVIEW_DECISION_APPROVE, STATE.PAYMENT_ORDER_STATE_SUCCESS),
        (pb.REVIEW_DECISION_DECLINE, STATE.PAYMENT_ORDER_STATE_FAILED),
    ):
        checkout, orders = _ids(1)
        held = await pay.stub.CreatePayment(
            _request(checkout, orders, amounts=(950_000,), payment_method="pm_card_visa"), metadata=_md()
        )
        assert held.payment_event.payment_orders[0].state == STATE.PAYMENT_ORDER_STATE_PENDING
        reviewed = await pay.stub.ReviewPaymentOrder(
            pb.ReviewPaymentOrderRequest(
                payment_order_id=orders[0], decision=decision, reviewer="ops", note="checked"
            ),
            metadata=_md(),
        )
        assert reviewed.payment_order.state == expected
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await pay.stub.ReviewPaymentOrder(
            pb.ReviewPaymentOrderRequest(payment_order_id=orders[0], decision=pb.REVIEW_DECISION_APPROVE),
            metadata=_md(),
        )
    assert error_info(err.value).reason == "ORDER_NOT_IN_REVIEW"


async def test_partial_and_full_refunds(pay):
    checkout, orders = _ids(1)
    await pay.stub.CreatePayment(
        _request(checkout, orders, amounts=(1000,), payment_method="pm_card_visa"), metadata=_md()
    )
    part = await pay.stub.CreateRefund(
        pb.CreateRefundRequest(payment_order_id=orders[0], amount_minor=300), metadata=_md()
    )
    assert part.refund.state == pb.REFUND_STATE_SUCCEEDED
    assert part.payment_order.state == STATE.PAYMENT_ORDER_STATE_PARTIALLY_REFUNDED
    assert part.payment_order.refunded_minor == 300
    rest = await pay.stub.CreateRefund(pb.CreateRefundRequest(payment_order_id=orders[0]), metadata=_md())
    assert rest.refund.amount_minor == 700
    assert rest.payment_order.state == STATE.PAYMENT_ORDER_STATE_REFUNDED
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await pay.stub.CreateRefund(
            pb.CreateRefundRequest(payment_order_id=orders[0], amount_minor=1), metadata=_md()
        )
    assert error_info(err.value).reason == "ORDER_NOT_REFUNDABLE"
    assert sum(r["amount"] for r in pay.psp_objects("refund")) == 1000


async def test_concurrent_refunds_never_exceed_the_captured_amount(pay):
    checkout, orders = _ids(1)
    await pay.stub.CreatePayment(
        _request(checkout, orders, amounts=(10_000,), payment_method="pm_card_visa"), metadata=_md()
    )

    async def refund():
        try:
            return await pay.stub.CreateRefund(
                pb.CreateRefundRequest(payment_order_id=orders[0], amount_minor=6000), metadata=_md()
            )
        except grpc.aio.AioRpcError as exc:
            return exc

    results = await asyncio.gather(*(refund() for _ in range(8)))
    ok = [r for r in results if isinstance(r, pb.CreateRefundResponse)]
    refused = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(ok) == 1
    assert {error_info(e).reason for e in refused} == {"REFUND_EXCEEDS_CAPTURED"}
    assert sum(r["amount"] for r in pay.psp_objects("refund")) == 6000
    assert (await _order(pay, orders[0])).refunded_minor == 6000


@pytest.mark.parametrize("fault", ["connection_drop", "error_after_commit"])
async def test_a_refund_left_pending_by_a_lost_psp_call_is_sent_again_by_the_janitor(pay, fault):
    """Chaos seed 13: the refund's call to the PSP failed on the network (connection_drop: it never
    arrived; error_after_commit: the PSP refunded and the answer was lost), the refund stayed pending
    for ever. The janitor sends it again under the same idempotency key and takes the PSP's answer."""
    checkout, orders = _ids(1)
    await pay.stub.CreatePayment(
        _request(checkout, orders, amounts=(2500,), payment_method="pm_card_visa"), metadata=_md()
    )
    # should_retry=false: the SDK does not retry the 500 itself (a connection drop it always retries).
    pay.sim.admin.set_faults(
        [{"kind": fault, "path_prefix": "/v1/refunds", "method": "POST", "should_retry": False}]
    )
    reply = await pay.stub.CreateRefund(
        pb.CreateRefundRequest(payment_order_id=orders[0], amount_minor=1000), metadata=_md()
    )
    assert reply.refund.state == pb.REFUND_STATE_PENDING
    assert pay.sim.admin.injected_faults(fault)
    pay.sim.admin.clear_faults()
    await pay.service.janitor_pass()
    order = await _order(pay, orders[0])
    assert (order.state, order.refunded_minor) == (STATE.PAYMENT_ORDER_STATE_PARTIALLY_REFUNDED, 1000)
    refunds = await pay.stub.ListRefunds(pb.ListRefundsRequest(payment_order_id=orders[0]), metadata=_md())
    assert [r.state for r in refunds.refunds] == [pb.REFUND_STATE_SUCCEEDED]
    assert [r["amount"] for r in pay.psp_objects("refund")] == [1000]  # refunded once at the PSP
    await pay.service.janitor_pass()  # nothing pending: nothing sent again
    assert [r["amount"] for r in pay.psp_objects("refund")] == [1000]


async def test_a_refund_call_retried_after_the_psp_forgot_its_key_refunds_once(pay):
    """Chaos seed 607: the PSP refunded, the call ended without an answer (here its deadline passed while
    the PSP was slow), and the client asked again (same Idempotency-Key) after the PSP's 24 h on the
    refund's key: sent again blind, it refunded twice."""
    checkout, orders = _ids(1)
    await pay.stub.CreatePayment(
        _request(checkout, orders, amounts=(2500,), payment_method="pm_card_visa"), metadata=_md()
    )
    key = f"refund-{uuid.uuid4().hex}"
    pay.sim.admin.set_faults(
        [{"kind": "latency", "latency_ms": 1500, "path_prefix": "/v1/refunds", "method": "POST", "count": 1}]
    )
    try:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await pay.stub.CreateRefund(
                pb.CreateRefundRequest(payment_order_id=orders[0], amount_minor=1000),
                metadata=_md(key),
                timeout=0.5,
            )
        assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        for _ in range(100):  # the PSP finishes the slow call on its own
            if pay.psp_objects("refund"):
                break
            await asyncio.sleep(0.05)
    finally:
        pay.sim.admin.clear_faults()
    assert [r["amount"] for r in pay.psp_objects("refund")] == [1000]
    pay.sim.admin.advance(days=2)  # the PSP forgets the refund's key

    again = await pay.stub.CreateRefund(
        pb.CreateRefundRequest(payment_order_id=orders[0], amount_minor=1000), metadata=_md(key)
    )
    assert again.refund.state == pb.REFUND_STATE_SUCCEEDED
    assert [r["amount"] for r in pay.psp_objects("refund")] == [1000]  # refunded once at the PSP
    order = await _order(pay, orders[0])
    assert (order.state, order.refunded_minor) == (STATE.PAYMENT_ORDER_STATE_PARTIALLY_REFUNDED, 1000)


async def test_bad_input_stores_nothing(pay):
    checkout, orders = _ids(1)
    bad = _request(checkout, orders, amounts=(0,), payment_method="pm_card_visa")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await pay.stub.CreatePayment(bad, metadata=_md())
    info = error_info(err.value)
    assert (info.reason, info.metadata["field"]) == ("AMOUNT_NOT_POSITIVE", "payment_orders[0].amount")
    async with pay.handle.engine.connect() as conn:
        rows = await conn.scalar(
            sa.text("SELECT count(*) FROM payment_orders WHERE checkout_id = :c"), {"c": checkout}
        )
    assert rows == 0
    assert pay.psp_objects("payment_intent") == []


async def test_creation_snapshots_never_move_an_order(pay):
    # payment_intent.created carries the object as it was before confirmation: it says nothing
    # about the outcome and must not pull a PENDING (3-D Secure) order back, nor fail it.
    checkout, orders = _ids(1)
    reply = await pay.stub.CreatePayment(
        _request(checkout, orders, amounts=(650,), payment_method="pm_card_authenticationRequired"),
        metadata=_md(),
    )
    assert reply.payment_event.payment_orders[0].state == STATE.PAYMENT_ORDER_STATE_PENDING
    created = [e for e in pay.events() if e["type"] == "payment_intent.created"]
    assert created
    stale = {**created[0], "id": f"evt_stale_{uuid.uuid4().hex[:8]}"}
    stale["data"]["object"]["status"] = "requires_payment_method"
    replies = await pay.deliver([created[0], stale])
    assert not any(r.applied for r in replies)
    assert (await _order(pay, orders[0])).state == STATE.PAYMENT_ORDER_STATE_PENDING


async def test_an_order_uncertain_past_its_deadline_raises_one_alert_and_stays_unknown(pay):
    from prometheus_client import REGISTRY
    from structlog.testing import capture_logs

    # A 500 stored under the key: every re-ask replays it, and no PaymentIntent exists to find.
    pay.sim.admin.set_faults([{"kind": "http_500", "path_prefix": "/v1/payment_intents", "method": "POST"}])
    checkout, orders = _ids(1)
    reply = await pay.stub.CreatePayment(
        _request(checkout, orders, amounts=(321,), payment_method="pm_card_visa"), metadata=_md()
    )
    assert reply.payment_event.payment_orders[0].state == STATE.PAYMENT_ORDER_STATE_UNKNOWN
    async with pay.handle.engine.begin() as conn:
        await conn.execute(
            sa.text(
                "UPDATE payment_orders SET created_at = now() - interval '2 days', next_check_at = now()"
                " WHERE payment_order_id = :o"
            ),
            {"o": orders[0]},
        )
    before = REGISTRY.get_sample_value("payment_orders_past_deadline_total") or 0
    with capture_logs() as logs:
        await pay.service.janitor_pass()
    assert (REGISTRY.get_sample_value("payment_orders_past_deadline_total") or 0) == before + 1
    alert = [e for e in logs if e["log_level"] == "error" and "deadline" in e["event"]]
    assert alert and alert[0]["payment_order_id"] == orders[0]
    assert (await _order(pay, orders[0])).state == STATE.PAYMENT_ORDER_STATE_UNKNOWN
    async with pay.handle.engine.begin() as conn:
        await conn.execute(
            sa.text("UPDATE payment_orders SET next_check_at = now() WHERE payment_order_id = :o"),
            {"o": orders[0]},
        )
    await pay.service.janitor_pass()
    assert (
        REGISTRY.get_sample_value("payment_orders_past_deadline_total") or 0
    ) == before + 1  # alerted once


async def test_event_types_pay_in_does_not_handle_are_acknowledged_without_a_write(pay):
    checkout, orders = _ids(1)
    reply = await pay.stub.CreatePayment(
        _request(checkout, orders, amounts=(420,), payment_method="pm_card_authenticationRequired"),
        metadata=_md(),
    )
    httpx.post(reply.payment_event.payment_orders[0].next_action_url, data={"action": "fail"}, timeout=10)
    mine = [e for e in pay.events() if checkout in str(e["data"]["object"].get("metadata"))]
    ignored = [e for e in mine if not handles_event_type(e["type"])]
    assert "payment_intent.created" in {e["type"] for e in ignored}
    handled = [e for e in mine if e["type"] == "payment_intent.payment_failed"]
    replies = await pay.deliver(ignored + handled)
    assert [r.applied for r in replies] == [False] * len(ignored) + [True]  # 3-D Secure failed
    async with pay.handle.engine.connect() as conn:
        remembered = set(
            (
                await conn.execute(
                    sa.text("SELECT key FROM idempotency_keys WHERE scope = 'payments.HandlePspEvent'")
                )
            ).scalars()
        )
    assert not {e["id"] for e in ignored} & remembered
    assert {e["id"] for e in handled} <= remembered


async def test_a_retry_with_another_body_under_an_unfinished_key_is_refused_not_resumed(pay):
    # The first attempt stored the checkout and died before answering: its key has no stored answer
    # yet, so the checkout's own fingerprint must catch a retry that asks for something else.
    checkout, orders = _ids(1)
    key = uuid.uuid4().hex
    async with pay.handle.engine.begin() as conn:
        await conn.execute(
            sa.text(
                "INSERT INTO payment_events (checkout_id, buyer_id, mode, currency, total_minor,"
                " payment_method, idempotency_key, fingerprint)"
                " VALUES (:c, 'b', 'DIRECT', 'USD', 500, 'pm_card_visa', :k, '\\x00'::bytea)"
            ),
            {"c": checkout, "k": key},
        )
        await conn.execute(
            sa.text(
                "INSERT INTO payment_orders (payment_order_id, checkout_id, seller_account, amount_minor,"
                " currency, state) VALUES (:o, :c, 'seller-x', 500, 'USD', 'NOT_STARTED')"
            ),
            {"o": orders[0], "c": checkout},
        )
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await pay.stub.CreatePayment(
            _request(checkout, orders, amounts=(999,), payment_method="pm_card_visa"), metadata=_md(key)
        )
    assert error_info(err.value).reason == "IDEMPOTENCY_KEY_REUSED"
    assert (await _order(pay, orders[0])).state == STATE.PAYMENT_ORDER_STATE_NOT_STARTED
    assert not [
        p for p in pay.psp_objects("payment_intent") if p.get("metadata", {}).get("checkout_id") == checkout
    ]


async def test_success_webhooks_are_applied_by_the_orders_state_without_an_event_record(pay):
    # The usual direct-mode order: our confirm call already made it SUCCESS, then the PSP's
    # payment_intent.succeeded arrives. It is answered from one read, without a transaction or an
    # idempotency record, and leaves the order exactly as it was.
    checkout, orders = _ids(1)
    reply = await pay.stub.CreatePayment(
        _request(checkout, orders, amounts=(1200,), payment_method="pm_card_visa"), metadata=_md()
    )
    assert reply.payment_event.payment_orders[0].state == STATE.PAYMENT_ORDER_STATE_SUCCESS
    succeeded = [e for e in pay.events() if e["type"] == "payment_intent.succeeded"]
    assert len(succeeded) == 1
    history = pb.ListPaymentOrderHistoryRequest(payment_order_id=orders[0])
    before = await pay.stub.ListPaymentOrderHistory(history)
    replies = await pay.deliver(succeeded * 2)
    assert [r.applied for r in replies] == [False, False]
    assert await pay.stub.ListPaymentOrderHistory(history) == before
    assert (await _order(pay, orders[0])).state == STATE.PAYMENT_ORDER_STATE_SUCCESS
    async with pay.handle.engine.connect() as conn:
        stored = await conn.scalar(
            sa.text("SELECT count(*) FROM idempotency_keys WHERE key = :k"), {"k": succeeded[0]["id"]}
        )
    assert stored == 0

    # The same event for an order that is not captured yet (3-D Secure completed) moves it with one
    # statement; the order's state, not a record of the event id, makes a redelivery change nothing.
    checkout, orders = _ids(1)
    reply = await pay.stub.CreatePayment(
        _request(checkout, orders, amounts=(650,), payment_method="pm_card_authenticationRequired"),
        metadata=_md(),
    )
    httpx.post(reply.payment_event.payment_orders[0].next_action_url, data={"action": "complete"}, timeout=10)
    succeeded = [
        e
        for e in pay.events()
        if e["type"] == "payment_intent.succeeded" and checkout in str(e["data"]["object"]["metadata"])
    ]
    replies = await pay.deliver(succeeded * 2)
    assert [r.applied for r in replies] == [True, False]
    assert (await _order(pay, orders[0])).state == STATE.PAYMENT_ORDER_STATE_SUCCESS
    history = await pay.stub.ListPaymentOrderHistory(
        pb.ListPaymentOrderHistoryRequest(payment_order_id=orders[0])
    )
    assert [(t.from_state, t.to_state) for t in history.transitions][-1] == (
        STATE.PAYMENT_ORDER_STATE_PENDING,
        STATE.PAYMENT_ORDER_STATE_SUCCESS,
    )


async def test_a_burst_larger_than_every_pool_completes_instead_of_starving(infra, sim, services):
    # Each checkout holds its claim connection for its whole run and needs other connections for its
    # statements meanwhile. With claims and statements sharing one pool, a burst as large as the pool
    # would hold every connection and wait forever for one more.
    settings = infra.settings(
        PaymentSettings,
        db_suffix="payments_small_pools",
        db_pool_size=2,
        ledger_addr=services["ledger"].address,
        wallet_addr=services["wallet"].address,
        events_namespace=f"{infra.prefix}-payments-small",
        psp_base_url=sim.base_url,
        psp_api_key=DEFAULT_API_KEY,
        risk_velocity_max_checkouts=10_000,
        risk_velocity_max_amount_minor=10**12,
        run_settlement=False,
        psp_webhook_secrets=[sim.webhook_secret],
    )
    handle = await start_service(settings, bootstrap.MIGRATIONS, bootstrap.build)
    channel = infra.channel(handle.address, "gateway")
    try:
        stub = pb_grpc.PaymentServiceStub(channel)
        burst = [_ids(1) for _ in range(12)]
        replies = await asyncio.wait_for(
            asyncio.gather(
                *(
                    stub.CreatePayment(
                        _request(c, o, amounts=(300,), payment_method="pm_card_visa", buyer=f"b-{c}"),
                        metadata=_md(),
                    )
                    for c, o in burst
                )
            ),
            timeout=25,
        )
        assert [r.payment_event.payment_orders[0].state for r in replies] == [
            STATE.PAYMENT_ORDER_STATE_SUCCESS
        ] * len(burst)
    finally:
        await channel.close()
        await handle.stop(0.2)


async def test_an_intent_event_with_unusable_metadata_is_answered_not_an_internal_error(pay):
    # A PSP event is signed, so this is defence in depth: odd metadata must not become an INTERNAL
    # error, which the gateway would answer 500 and the PSP redeliver for days.
    for metadata in (["po_x"], "po_x", None, {"payment_order_id": 42}):
        event = {
            "id": f"evt_odd_{uuid.uuid4().hex[:10]}",
            "type": "payment_intent.succeeded",
            "data": {
                "object": {
                    "id": f"pi_odd_{uuid.uuid4().hex[:8]}",
                    "status": "succeeded",
                    "metadata": metadata,
                }
            },
        }
        replies = await pay.deliver([event])
        assert [r.applied for r in replies] == [False]
