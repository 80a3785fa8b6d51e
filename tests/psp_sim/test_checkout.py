"""Checkout Sessions through the SDK and the hosted page through plain form posts."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import stripe

from psp_sim.testing import SimServer

SUCCESS = "http://shop.test/success?session_id={CHECKOUT_SESSION_ID}"
CANCEL = "http://shop.test/cancel?session_id={CHECKOUT_SESSION_ID}"


def _session(client: Any, **extra: Any) -> Any:
    params = {
        "mode": "payment",
        "success_url": SUCCESS,
        "cancel_url": CANCEL,
        "client_reference_id": "order-1",
        "line_items": [
            {
                "price_data": {"currency": "eur", "unit_amount": 1500, "product_data": {"name": "Book"}},
                "quantity": 2,
            },
            {
                "price_data": {"currency": "eur", "unit_amount": 250, "product_data": {"name": "Pen"}},
                "quantity": 1,
            },
        ],
        "payment_intent_data": {"metadata": {"order": "order-1"}, "transfer_group": "order-1"},
        **extra,
    }
    return client.v1.checkout.sessions.create(params=params)


def _submit(
    url: str, number: str = "4242424242424242", exp: str = "12/34", cvc: str = "123"
) -> httpx.Response:
    return httpx.post(
        url, data={"cardnumber": number, "exp": exp, "cvc": cvc, "name": "Ada", "action": "pay"}
    )


def test_create_retrieve_and_pay_through_hosted_page(client: Any) -> None:
    cs = _session(client)
    assert cs.id.startswith("cs_test_") and cs.status == "open" and cs.payment_status == "unpaid"
    assert cs.amount_total == 3250 and cs.currency == "eur"
    page = httpx.get(cs.url)
    assert page.status_code == 200 and 'name="cardnumber"' in page.text
    resp = _submit(cs.url)
    assert resp.status_code == 303
    assert resp.headers["location"] == f"http://shop.test/success?session_id={cs.id}"
    done = client.v1.checkout.sessions.retrieve(cs.id, params={"expand": ["payment_intent"]})
    assert done.status == "complete" and done.payment_status == "paid"
    assert done.payment_intent.status == "succeeded" and done.payment_intent.amount == 3250
    assert done.payment_intent.metadata["order"] == "order-1"
    assert done.payment_intent.transfer_group == "order-1"
    # Completed sessions no longer take payments.
    assert httpx.get(cs.url).status_code == 303


def test_decline_keeps_buyer_on_page_then_retry_succeeds(client: Any) -> None:
    cs = _session(client)
    resp = _submit(cs.url, "4000000000009995")
    assert resp.status_code == 402 and "insufficient funds" in resp.text
    assert client.v1.checkout.sessions.retrieve(cs.id).status == "open"
    assert _submit(cs.url).status_code == 303
    assert client.v1.checkout.sessions.retrieve(cs.id).payment_status == "paid"


def test_invalid_card_data_shows_error(client: Any) -> None:
    cs = _session(client)
    assert "card number is incorrect" in _submit(cs.url, "4242424242424241").text
    assert "expiration month" in _submit(cs.url, exp="13/34").text
    assert "expiration year" in _submit(cs.url, exp="12/95").text
    assert "security code" in _submit(cs.url, cvc="99").text


def test_cancel_redirects_to_cancel_url(client: Any) -> None:
    cs = _session(client)
    resp = httpx.post(cs.url, data={"action": "cancel"})
    assert (
        resp.status_code == 303 and resp.headers["location"] == f"http://shop.test/cancel?session_id={cs.id}"
    )
    assert client.v1.checkout.sessions.retrieve(cs.id).status == "open"


def test_3ds_on_hosted_page(client: Any) -> None:
    cs = _session(client)
    resp = _submit(cs.url, "4000002760003184")
    assert resp.status_code == 303 and "/3ds/pi_" in resp.headers["location"]
    challenge = resp.headers["location"]
    back = httpx.post(challenge, data={"action": "complete"})
    assert back.status_code == 303
    final = httpx.get(back.headers["location"])
    assert (
        final.status_code == 303
        and final.headers["location"] == f"http://shop.test/success?session_id={cs.id}"
    )
    assert client.v1.checkout.sessions.retrieve(cs.id).payment_status == "paid"


def test_3ds_failure_on_hosted_page_returns_to_form(client: Any) -> None:
    cs = _session(client)
    challenge = _submit(cs.url, "4000000000003220").headers["location"]
    back = httpx.post(challenge, data={"action": "fail"})
    page = httpx.get(back.headers["location"])
    assert page.status_code == 402 and "unable to authenticate" in page.text
    assert client.v1.checkout.sessions.retrieve(cs.id).status == "open"


def test_expire_via_api(client: Any) -> None:
    cs = _session(client)
    expired = client.v1.checkout.sessions.expire(cs.id)
    assert expired.status == "expired" and expired.url is None
    assert httpx.get(cs.url).status_code == 410
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.checkout.sessions.expire(cs.id)


def test_expires_at_with_clock_advance_cancels_the_intent(sim: SimServer, client: Any) -> None:
    cs = _session(client)
    _submit(cs.url, "4000000000000002")  # a failed attempt creates the PaymentIntent
    pi_id = client.v1.checkout.sessions.retrieve(cs.id).payment_intent
    sim.admin.advance(hours=25)
    assert client.v1.checkout.sessions.retrieve(cs.id).status == "expired"
    assert client.v1.payment_intents.retrieve(pi_id).status == "canceled"


def test_session_intent_cannot_be_confirmed_directly(client: Any) -> None:
    cs = _session(client)
    _submit(cs.url, "4000000000000002")
    pi_id = client.v1.checkout.sessions.retrieve(cs.id).payment_intent
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.payment_intents.confirm(pi_id, params={"payment_method": "pm_card_visa"})
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.payment_intents.cancel(pi_id)


def test_validation(client: Any) -> None:
    with pytest.raises(stripe.InvalidRequestError) as exc:
        client.v1.checkout.sessions.create(params={"mode": "payment", "success_url": SUCCESS})
    assert exc.value.param == "line_items"
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.checkout.sessions.retrieve("cs_test_nope")


def test_list_sessions(client: Any) -> None:
    ids = [_session(client).id for _ in range(3)]
    assert [s.id for s in client.v1.checkout.sessions.list(params={"limit": 2}).auto_paging_iter()] == ids[
        ::-1
    ]


def test_checkout_event_sequence(sim: SimServer, client: Any) -> None:
    cs = _session(client)
    _submit(cs.url)
    events = sim.admin.state()["events"]
    assert [e["type"] for e in events] == [
        "payment_intent.created",
        "charge.succeeded",
        "payment_intent.succeeded",
        "checkout.session.completed",
    ]
    assert events[-1]["object_id"] == cs.id
    completed = client.v1.events.retrieve(events[-1]["id"]).data.object
    assert completed.payment_status == "paid" and completed.client_reference_id == "order-1"
