"""The PSP translator: Stripe objects and webhook payloads in, typed views out."""

from __future__ import annotations

import json
import time

import grpc
import pytest

from payment_svc import psp, psp_objects
from payment_svc.psp_objects import CheckoutSessionView, PaymentIntentView, RefundView
from psp_sim.webhooks import sign
from svckit.gen.payments.v1 import payment_service_pb2 as pb
from svckit.grpc_errors import error_info


def _payload(kind: str, obj: object, event_id: str = "evt_1") -> bytes:
    return json.dumps({"id": event_id, "object": "event", "type": kind, "data": {"object": obj}}).encode()


@pytest.mark.parametrize(
    ("metadata", "order_ids"),
    [
        ({"checkout_id": "co-1", "payment_order_ids": "po-1,po-2,po-3"}, ["po-1", "po-2", "po-3"]),
        ({"checkout_id": "co-1"}, []),  # the ids did not fit: the checkout id finds the orders
        ({"checkout_id": "co-1", "payment_order_id": "po-9"}, ["po-9"]),  # made per order, before
    ],
)
def test_a_payment_intent_names_the_orders_its_metadata_lists(metadata, order_ids):
    view = psp_objects.payment_intent({"id": "pi_1", "status": "succeeded", "metadata": metadata})
    assert view.payment_order_ids == order_ids


def test_a_declined_payment_intent_reads_its_decline_code_and_message():
    view = psp_objects.payment_intent(
        {
            "id": "pi_1",
            "object": "payment_intent",
            "status": "requires_payment_method",
            "metadata": {"payment_order_id": "po-1", "checkout_id": "", "seller_account": 7},
            "last_payment_error": {
                "code": "card_declined",
                "decline_code": "insufficient_funds",
                "message": "No",
            },
        }
    )
    assert view == PaymentIntentView(
        id="pi_1",
        status="requires_payment_method",
        metadata={"payment_order_id": "po-1"},  # empty and non-string values are not ours
        last_error_code="insufficient_funds",
        last_error_message="No",
    )


def test_a_payment_intent_awaiting_authentication_reads_its_redirect_url():
    view = psp_objects.payment_intent(
        {
            "id": "pi_2",
            "status": "requires_action",
            "next_action": {"redirect_to_url": {"url": "https://3ds"}},
        }
    )
    assert view.next_action_url == "https://3ds"
    assert view.last_error_code is None and view.metadata == {}


def test_fields_of_the_wrong_type_read_as_absent():
    view = psp_objects.payment_intent({"id": 5, "status": None, "metadata": [], "last_payment_error": "x"})
    assert view == PaymentIntentView(id=None, status="")


def test_a_checkout_session_reads_its_expanded_payment_intent_and_our_checkout_id():
    expanded = psp_objects.checkout_session(
        {
            "id": "cs_1",
            "status": "complete",
            "payment_status": "paid",
            "payment_intent": {"id": "pi_9", "status": "succeeded"},
            "metadata": {"checkout_id": "co-1"},
        }
    )
    assert expanded == CheckoutSessionView(
        id="cs_1", status="complete", paid=True, payment_intent_id="pi_9", checkout_id="co-1"
    )
    by_id = psp_objects.checkout_session(
        {"id": "cs_2", "status": "open", "payment_status": "unpaid", "payment_intent": "pi_8",
         "client_reference_id": "co-2", "metadata": {"checkout_id": "co-other"}}
    )  # fmt: skip
    assert (by_id.paid, by_id.payment_intent_id, by_id.checkout_id) == (False, "pi_8", "co-2")


def test_a_refund_reads_our_refund_id_from_its_metadata():
    view = psp_objects.refund(
        {
            "id": "re_1",
            "status": "failed",
            "failure_reason": "expired_or_canceled_card",
            "metadata": {"refund_id": "rf_1"},
        }
    )
    assert view == RefundView(
        id="re_1", status="failed", refund_id="rf_1", failure_reason="expired_or_canceled_card"
    )


def test_an_event_translates_its_object_by_type_and_the_given_type_wins():
    event = psp_objects.event("", _payload("payment_intent.succeeded", {"id": "pi_1", "status": "succeeded"}))
    assert (event.id, event.type) == ("evt_1", "payment_intent.succeeded")
    assert isinstance(event.object, PaymentIntentView) and event.object.status == "succeeded"
    as_told = psp_objects.event("refund.updated", _payload("payment_intent.succeeded", {"id": "re_1"}))
    assert isinstance(as_told.object, RefundView) and as_told.object.id == "re_1"
    ignored = psp_objects.event("", _payload("customer.created", {"id": "cus_1"}))
    assert ignored.object is None and ignored.type == "customer.created"


@pytest.mark.parametrize(
    "payload",
    [b"not json", b"[1, 2]", b'{"id": "evt_1", "data": {}}', _payload("payment_intent.succeeded", "pi_1")],
)
def test_a_payload_without_an_object_at_data_object_is_not_an_event(payload):
    with pytest.raises(psp_objects.NotAnEvent):
        psp_objects.event("payment_intent.succeeded", payload)


async def test_a_signed_event_whose_object_is_not_an_object_is_invalid_payload(pay):
    payload = _payload("payment_intent.succeeded", "pi_1", event_id="evt_not_an_object")
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await pay.stub.HandlePspEvent(
            pb.HandlePspEventRequest(
                event_id="evt_not_an_object",
                event_type="payment_intent.succeeded",
                payload=payload,
                stripe_signature=sign(payload.decode(), pay.sim.webhook_secret, int(time.time())),
            )
        )
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    info = error_info(refused.value)
    assert info is not None and info.reason == "INVALID_PAYLOAD"


def test_a_dispute_event_reads_its_charge_amount_status_and_deadline():
    body = {
        "id": "evt_1",
        "type": "charge.dispute.created",
        "data": {
            "object": {
                "id": "dp_1",
                "object": "dispute",
                "payment_intent": {"id": "pi_1"},
                "amount": 4500,
                "currency": "usd",
                "status": "needs_response",
                "reason": "fraudulent",
                "evidence_details": {"due_by": 1_800_000_000},
            }
        },
    }
    event = psp_objects.event("", json.dumps(body).encode())
    assert event.object == psp_objects.DisputeView(
        id="dp_1",
        payment_intent_id="pi_1",
        amount_minor=4500,
        currency="USD",
        status="needs_response",
        reason="fraudulent",
        evidence_due_by=1_800_000_000,
    )
    body["data"]["object"]["amount"] = "4500"  # a string is no amount
    unreadable = psp_objects.event("", json.dumps(body).encode()).object
    assert isinstance(unreadable, psp_objects.DisputeView) and unreadable.amount_minor is None


def test_stripe_amounts_come_back_as_iso_minor_units_only_when_whole():
    assert psp.iso_amount(4500, "usd") == 4500
    assert psp.iso_amount(12_300, "ISK") == 123  # Stripe counts ISK in hundredths
    assert psp.iso_amount(12_345, "ISK") is None
