"""Disputes through the real payment service and the PSP simulator: the PSP's charge.dispute.created, .updated
and .closed events recorded on the checkout (status, amount, reason, evidence due by), a line in each order's
history and an event on the backbone; a redelivered event changes nothing, and a closed dispute stays closed."""

from __future__ import annotations

import copy
import uuid

import grpc
import pytest
import sqlalchemy as sa

from svckit.gen.payments.v1 import payment_service_pb2 as pb
from svckit.grpc_errors import error_info
from tests.payments.test_pay_in import _ids, _md, _request


def _dispute_events(pay, kinds: tuple[str, ...] = ("created", "updated", "closed")) -> list[dict]:
    return [e for e in pay.events() if e["type"] in {f"charge.dispute.{k}" for k in kinds}]


async def _checkout(pay, checkout: str) -> pb.PaymentEvent:
    return (await pay.stub.GetCheckout(pb.GetCheckoutRequest(checkout_id=checkout))).payment_event


async def _history(pay, order: str) -> list[pb.OrderTransition]:
    reply = await pay.stub.ListPaymentOrderHistory(pb.ListPaymentOrderHistoryRequest(payment_order_id=order))
    return list(reply.transitions)


async def _outbox(pay, checkout: str) -> list[tuple[str, str]]:
    async with pay.handle.engine.connect() as conn:
        rows = await conn.execute(
            sa.text(
                "SELECT type, payload->>'status' AS status FROM event_outbox"
                " WHERE aggregate_id = :c AND type LIKE 'payment.dispute.%' ORDER BY seq"
            ),
            {"c": checkout},
        )
        return [(r.type, r.status) for r in rows]


async def test_a_dispute_is_recorded_on_the_checkout_its_history_and_the_backbone(pay):
    checkout, orders = _ids(2)
    reply = await pay.stub.CreatePayment(
        _request(checkout, orders, amounts=(3000, 1500), payment_method="pm_card_createDispute"),
        metadata=_md(),
    )
    assert [o.state for o in reply.payment_event.payment_orders] == [pb.PAYMENT_ORDER_STATE_SUCCESS] * 2
    [created] = _dispute_events(pay)
    dispute = created["data"]["object"]

    await pay.deliver([created])

    event = await _checkout(pay, checkout)
    [recorded] = event.disputes
    assert (
        recorded.dispute_id,
        recorded.status,
        recorded.reason,
        recorded.currency,
        recorded.amount_minor,
    ) == (
        dispute["id"],
        "needs_response",
        "fraudulent",
        "USD",
        4500,
    )
    assert recorded.payment_intent_id == event.payment_orders[0].psp_reference
    assert recorded.evidence_due_time.seconds == dispute["evidence_details"]["due_by"]
    for order in orders:  # the orders keep their state; their history says why a person should look
        [line] = [t for t in await _history(pay, order) if t.cause == "psp_event:charge.dispute.created"]
        assert line.from_state == line.to_state == pb.PAYMENT_ORDER_STATE_SUCCESS
        assert (
            dispute["id"] in line.detail
            and "needs_response" in line.detail
            and "evidence due by" in line.detail
        )

    # Evidence submitted, then the platform accepts the loss.
    client = pay.sim.client()
    client.v1.disputes.update(dispute["id"], params={"evidence": {"uncategorized_text": "signed receipt"}})
    client.v1.disputes.close(dispute["id"])
    later = _dispute_events(pay, ("updated", "closed"))
    assert [e["type"] for e in later] == ["charge.dispute.updated", "charge.dispute.closed"]
    await pay.deliver(later)
    await pay.deliver([created, *later])  # redelivered: replays, nothing changes

    [closed] = (await _checkout(pay, checkout)).disputes
    assert closed.status == "lost"
    causes = [t.cause for t in await _history(pay, orders[0]) if "dispute" in t.cause]
    assert causes == [f"psp_event:charge.dispute.{k}" for k in ("created", "updated", "closed")]
    assert await _outbox(pay, checkout) == [
        ("payment.dispute.created", "needs_response"),
        ("payment.dispute.updated", "under_review"),
        ("payment.dispute.closed", "lost"),
    ]


async def test_a_late_event_never_reopens_a_closed_dispute(pay):
    checkout, orders = _ids(1)
    await pay.stub.CreatePayment(
        _request(checkout, orders, amounts=(2000,), payment_method="pm_card_createDispute"), metadata=_md()
    )
    [created] = _dispute_events(pay)
    dispute_id = created["data"]["object"]["id"]
    pay.sim.client().v1.disputes.update(
        dispute_id, params={"evidence": {"uncategorized_text": "winning_evidence"}}
    )
    updated, closed = _dispute_events(pay, ("updated", "closed"))

    # Delivered out of order: the close first, then the older events.
    await pay.deliver([closed, created, updated])

    [recorded] = (await _checkout(pay, checkout)).disputes
    assert recorded.status == "won"
    assert [s for _, s in await _outbox(pay, checkout)] == ["won"]


async def test_a_dispute_event_without_an_amount_or_currency_is_refused_and_changes_nothing(pay):
    checkout, orders = _ids(1)
    await pay.stub.CreatePayment(
        _request(checkout, orders, amounts=(2000,), payment_method="pm_card_createDispute"), metadata=_md()
    )
    [created] = _dispute_events(pay)
    broken = copy.deepcopy(created)
    broken["id"] = f"evt_broken_{uuid.uuid4().hex[:8]}"
    del broken["data"]["object"]["currency"]

    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await pay.deliver([broken])

    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(refused.value).reason == "INVALID_PAYLOAD"
    assert not (await _checkout(pay, checkout)).disputes
    assert await _outbox(pay, checkout) == []
    assert not [t for t in await _history(pay, orders[0]) if "dispute" in t.cause]
