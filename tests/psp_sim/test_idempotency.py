"""Stripe's idempotency rules, driven through the SDK."""

from __future__ import annotations

import threading
from typing import Any

import httpx
import pytest
import stripe
from stripe.params import PaymentIntentCreateParams

from psp_sim.testing import SimServer
from tests.psp_sim.stripe_answers import headers_of, intent_id_of

PARAMS: PaymentIntentCreateParams = {
    "amount": 1200,
    "currency": "usd",
    "payment_method": "pm_card_visa",
    "confirm": True,
}


def test_same_key_same_params_replays(sim: SimServer, client: Any) -> None:
    first = client.v1.payment_intents.create(params=PARAMS, options={"idempotency_key": "order-1"})
    again = client.v1.payment_intents.create(params=PARAMS, options={"idempotency_key": "order-1"})
    assert again.id == first.id
    assert again.last_response.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.last_response.headers
    assert again.last_response.headers["Idempotency-Key"] == "order-1"
    assert len(sim.admin.state("payment_intent")["objects"]["payment_intent"]) == 1


def test_same_key_different_params_is_idempotency_error(client: Any) -> None:
    client.v1.payment_intents.create(params=PARAMS, options={"idempotency_key": "order-2"})
    with pytest.raises(stripe.IdempotencyError) as exc:
        client.v1.payment_intents.create(
            params={**PARAMS, "amount": 1300}, options={"idempotency_key": "order-2"}
        )
    assert exc.value.http_status == 400
    # Another endpoint with the same key is also a different request.
    with pytest.raises(stripe.IdempotencyError):
        client.v1.refunds.create(params={"payment_intent": "pi_x"}, options={"idempotency_key": "order-2"})


def test_keys_are_scoped_by_api_key_and_account(sim: SimServer, client: Any) -> None:
    client.v1.payment_intents.create(params=PARAMS, options={"idempotency_key": "shared"})
    other_client = stripe.StripeClient("sk_test_other", base_addresses={"api": sim.base_url})
    pi = other_client.v1.payment_intents.create(
        params={**PARAMS, "amount": 99}, options={"idempotency_key": "shared"}
    )
    assert pi.amount == 99


def test_card_errors_are_replayed(client: Any) -> None:
    params = {**PARAMS, "payment_method": "pm_card_visa_chargeDeclined"}
    with pytest.raises(stripe.CardError) as first:
        client.v1.payment_intents.create(params=params, options={"idempotency_key": "decl"})
    with pytest.raises(stripe.CardError) as second:
        client.v1.payment_intents.create(params=params, options={"idempotency_key": "decl"})
    assert headers_of(second.value)["Idempotent-Replayed"] == "true"
    assert intent_id_of(second.value) == intent_id_of(first.value)


def test_validation_failures_are_not_stored(client: Any) -> None:
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.payment_intents.create(params={"currency": "usd"}, options={"idempotency_key": "fixme"})
    # The corrected request with the same key runs (it would be an idempotency_error if the 400 were stored).
    pi = client.v1.payment_intents.create(
        params={"amount": 10, "currency": "usd"}, options={"idempotency_key": "fixme"}
    )
    assert pi.amount == 10


def test_500s_are_replayed(sim: SimServer, client: Any) -> None:
    sim.admin.set_faults([{"kind": "http_500", "count": 1}])
    with pytest.raises(stripe.APIError) as first:
        client.v1.payment_intents.create(params=PARAMS, options={"idempotency_key": "k500"})
    assert first.value.http_status == 500
    with pytest.raises(stripe.APIError) as second:
        client.v1.payment_intents.create(params=PARAMS, options={"idempotency_key": "k500"})
    assert headers_of(second.value)["Idempotent-Replayed"] == "true"
    assert sim.admin.state("payment_intent")["objects"].get("payment_intent", []) == []
    # A new key goes through: the fault fired once only.
    assert (
        client.v1.payment_intents.create(params=PARAMS, options={"idempotency_key": "k500-b"}).status
        == "succeeded"
    )


def test_key_in_flight_gets_409(sim: SimServer) -> None:
    # The first request is held 2 s: long enough for the second to arrive on a loaded machine.
    sim.admin.set_faults(
        [{"kind": "latency", "latency_ms": 2000, "count": 1, "path_prefix": "/v1/payment_intents"}]
    )
    body = "amount=500&currency=usd&payment_method=pm_card_visa&confirm=true"
    headers = {
        "Authorization": "Bearer sk_test_psp_sim",
        "Idempotency-Key": "slow-1",
        "Content-Type": "application/x-www-form-urlencoded",
    }
    results: list[httpx.Response] = []
    slow = threading.Thread(
        target=lambda: results.append(
            httpx.post(f"{sim.base_url}/v1/payment_intents", content=body, headers=headers)
        )
    )
    slow.start()
    deadline = threading.Event()
    while not sim.admin.injected_faults("latency") and not deadline.wait(0.01):
        pass
    second = httpx.post(f"{sim.base_url}/v1/payment_intents", content=body, headers=headers)
    slow.join()
    assert second.status_code == 409 and second.json()["error"]["code"] == "idempotency_key_in_use"
    assert second.headers["stripe-should-retry"] == "true"
    assert results[0].status_code == 200
    # After it finished, the key replays.
    third = httpx.post(f"{sim.base_url}/v1/payment_intents", content=body, headers=headers)
    assert third.headers["idempotent-replayed"] == "true" and third.json()["id"] == results[0].json()["id"]


def test_sdk_retries_409_until_the_first_finishes(sim: SimServer) -> None:
    sim.admin.set_faults([{"kind": "latency", "latency_ms": 300, "count": 1}])
    c = sim.client(max_network_retries=3)
    out: list[Any] = []
    t = threading.Thread(
        target=lambda: out.append(
            c.v1.payment_intents.create(params=PARAMS, options={"idempotency_key": "race"})
        )
    )
    t.start()
    while not sim.admin.injected_faults("latency"):
        pass
    second = c.v1.payment_intents.create(params=PARAMS, options={"idempotency_key": "race"})
    t.join()
    assert second.id == out[0].id
    assert len(sim.admin.state("payment_intent")["objects"]["payment_intent"]) == 1


def test_get_requests_ignore_keys(sim: SimServer, client: Any) -> None:
    pi = client.v1.payment_intents.create(params=PARAMS)
    r = httpx.get(
        f"{sim.base_url}/v1/payment_intents/{pi.id}",
        headers={"Authorization": "Bearer sk_test_psp_sim", "Idempotency-Key": "x"},
    )
    assert r.status_code == 200 and "idempotent-replayed" not in r.headers


def test_overlong_key_is_rejected(client: Any) -> None:
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.payment_intents.create(params=PARAMS, options={"idempotency_key": "k" * 256})


def test_429_with_should_retry_is_retried_by_the_sdk(sim: SimServer) -> None:
    sim.admin.set_faults([{"kind": "http_429", "count": 1, "should_retry": True}])
    pi = sim.client(max_network_retries=1).v1.payment_intents.create(params=PARAMS)
    assert pi.status == "succeeded" and len(sim.admin.injected_faults("http_429")) == 1


def test_a_key_answered_just_now_replays_even_if_the_clock_jumped_past_its_ttl(
    sim: SimServer, client: Any
) -> None:
    """Chaos seed 139: a refund call was held past the caller's timeout (latency fault); meanwhile the
    clock moved on 49 h (the campaign's pay-out step); the SDK's retry came a moment after the first
    had finished and, its key being "older" than 24 h on the clock, refunded again. A key lives 24 h
    from its stored answer: a retry seconds after it gets that answer."""
    pi = client.v1.payment_intents.create(params=PARAMS)
    sim.admin.set_faults([{"kind": "latency", "latency_ms": 1500, "count": 1, "path_prefix": "/v1/refunds"}])
    body = f"payment_intent={pi.id}&amount=100"
    headers = {
        "Authorization": "Bearer sk_test_psp_sim",
        "Idempotency-Key": "rf_clock_jump",
        "Content-Type": "application/x-www-form-urlencoded",
    }
    first: list[httpx.Response] = []
    slow = threading.Thread(
        target=lambda: first.append(
            httpx.post(f"{sim.base_url}/v1/refunds", content=body, headers=headers, timeout=30)
        )
    )
    slow.start()
    deadline = threading.Event()
    while not sim.admin.injected_faults("latency") and not deadline.wait(0.01):
        pass
    sim.admin.advance(seconds=2 * 86_400 + 3600)  # while the first is still running
    slow.join()
    again = httpx.post(f"{sim.base_url}/v1/refunds", content=body, headers=headers, timeout=30)
    assert first[0].status_code == 200 and again.headers.get("idempotent-replayed") == "true"
    assert again.json()["id"] == first[0].json()["id"]
    assert len(sim.admin.state("refund")["objects"]["refund"]) == 1
