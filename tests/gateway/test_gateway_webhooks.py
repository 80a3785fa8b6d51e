"""POST /v1/webhooks/stripe: Stripe signatures verified on the raw body, then HandlePspEvent."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid

import grpc
import httpx
import pytest
import pytest_asyncio
import stripe
import structlog.testing
from prometheus_client import REGISTRY

from gateway.routes.webhooks import is_terminal
from svckit.devstack.infra import free_port
from svckit.logging import add_request_context

WEBHOOK_SECRET = "whsec_" + "gatewaytests0123456789abcdef"  # as in conftest.py's gateways

URL = "/v1/webhooks/stripe"


def _event(event_id: str | None = None) -> bytes:
    event = {
        "id": event_id or f"evt_{uuid.uuid4().hex[:24]}",
        "object": "event",
        "api_version": "2026-10-28.endive",
        "created": int(time.time()),
        "type": "payment_intent.succeeded",
        "livemode": False,
        "data": {"object": {"id": "pi_123", "object": "payment_intent", "amount": 2500, "currency": "usd",
                            "metadata": {"payment_order_id": "po_1"}}},
    }  # fmt: skip
    return json.dumps(event, separators=(",", ":")).encode()


def _sign(payload: bytes, secret: str = WEBHOOK_SECRET, timestamp: int | None = None) -> str:
    return stripe.WebhookSignature.generate_signature_header(payload.decode(), secret, timestamp)


def _sign_by_hand(payload: bytes, secret: str, timestamp: int) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


@pytest_asyncio.fixture(scope="module")
async def anon(gw):
    async with gw.client() as c:
        yield c


def _failures() -> float:
    return REGISTRY.get_sample_value("gateway_webhook_signature_failures_total", {"provider": "stripe"}) or 0


async def test_a_valid_event_reaches_the_payment_service_with_its_id_as_idempotency_key(anon):
    payload = _event()
    event_id = json.loads(payload)["id"]
    with structlog.testing.capture_logs(processors=[add_request_context]) as logs:
        r = await anon.post(URL, content=payload, headers={"Stripe-Signature": _sign(payload),
                                                           "content-type": "application/json"})  # fmt: skip
    assert r.status_code == 200, r.text
    assert r.json() == {"received": True}
    reached = [e for e in logs if e.get("idempotency_key") == event_id]
    assert reached, "the event id must travel as the idempotency key"


async def test_a_signature_computed_by_hand_is_accepted_too(anon):
    payload = _event()
    r = await anon.post(URL, content=payload, headers={"Stripe-Signature": _sign_by_hand(
        payload, WEBHOOK_SECRET, int(time.time()))})  # fmt: skip
    assert r.status_code == 200, r.text


async def test_a_clock_a_little_ahead_is_within_the_tolerance(anon):
    payload = _event()
    r = await anon.post(
        URL, content=payload, headers={"Stripe-Signature": _sign(payload, timestamp=int(time.time()) + 60)}
    )
    assert r.status_code == 200, r.text


def _bad_deliveries() -> list[tuple[str, bytes, object]]:
    payload = _event("evt_badsig1")
    now = int(time.time())
    return [
        ("tampered", payload.replace(b"2500", b"9999"), {"Stripe-Signature": _sign(payload)}),
        ("wrong secret", payload, {"Stripe-Signature": _sign(payload, "whsec_" + "z" * 28)}),
        ("old", payload, {"Stripe-Signature": _sign(payload, timestamp=now - 301)}),
        # Signed when the test runs, not at collection: "ahead" must be ahead of the gateway's clock.
        (
            "an hour ahead",
            payload,
            lambda: {"Stripe-Signature": _sign(payload, timestamp=int(time.time()) + 3600)},
        ),
        (
            "just past the tolerance ahead",
            payload,
            lambda: {"Stripe-Signature": _sign(payload, timestamp=int(time.time()) + 330)},
        ),
        ("missing", payload, {}),
        ("empty", payload, {"Stripe-Signature": ""}),
        ("garbage", payload, {"Stripe-Signature": "nonsense"}),
        ("spaces", payload, {"Stripe-Signature": _sign(payload).replace(",", ", ")}),
        ("v0 only", payload, {"Stripe-Signature": _sign(payload).replace("v1=", "v0=")}),
    ]


BAD = _bad_deliveries()


@pytest.mark.parametrize(("name", "payload", "headers"), BAD, ids=[b[0] for b in BAD])
async def test_bad_signatures_are_400_logged_and_counted(anon, name, payload, headers):
    headers = headers() if callable(headers) else headers
    before = _failures()
    with structlog.testing.capture_logs() as logs:
        r = await anon.post(URL, content=payload, headers=headers)
    assert r.status_code == 400, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["code"] == "INVALID_SIGNATURE"
    assert _failures() - before == 1
    warnings = [e for e in logs if e["event"] == "webhook signature refused"]
    assert len(warnings) == 1 and warnings[0]["log_level"] == "warning"
    assert warnings[0]["event_id"] == "evt_badsig1"
    assert WEBHOOK_SECRET not in repr(logs) and WEBHOOK_SECRET not in r.text
    # Nothing reached the payment service.
    assert not [e for e in logs if "HandlePspEvent" in str(e.get("method"))]


async def test_a_signed_body_that_is_not_an_event_is_400(anon):
    for payload in (b"not json", b'{"object": "event"}', b"[1, 2]"):
        r = await anon.post(URL, content=payload, headers={"Stripe-Signature": _sign(payload)})
        assert r.status_code == 400
        assert r.json()["code"] == "INVALID_PAYLOAD"
    not_utf8 = b'{"id": "evt_\xff"}'
    signature = _sign_by_hand(not_utf8, WEBHOOK_SECRET, int(time.time()))
    r = await anon.post(URL, content=not_utf8, headers={"Stripe-Signature": signature})
    assert r.status_code == 400
    assert r.json()["code"] in ("INVALID_PAYLOAD", "INVALID_SIGNATURE")


async def test_payment_service_down_is_503_so_the_psp_retries(start_gateway):
    down = await start_gateway(payment_addr=f"127.0.0.1:{free_port()}", webhook_upstream_timeout_seconds=1)
    payload = _event()
    async with httpx.AsyncClient(base_url=down.url, timeout=10) as c:
        r = await c.post(URL, content=payload, headers={"Stripe-Signature": _sign(payload)})
    assert r.status_code == 503
    assert r.json()["code"] == "UPSTREAM_UNAVAILABLE"


async def test_without_a_secret_a_development_gateway_refuses_every_delivery(start_gateway):
    dev = await start_gateway(environment="development", stripe_webhook_secret=None)
    payload = _event()
    async with httpx.AsyncClient(base_url=dev.url, timeout=10) as c:
        r = await c.post(URL, content=payload, headers={"Stripe-Signature": _sign(payload)})
    assert r.status_code == 400
    assert r.json()["code"] == "INVALID_SIGNATURE"


@pytest.mark.parametrize(
    ("code", "terminal"),
    [
        (grpc.StatusCode.INVALID_ARGUMENT, True),
        (grpc.StatusCode.NOT_FOUND, True),
        (grpc.StatusCode.FAILED_PRECONDITION, True),
        (grpc.StatusCode.ALREADY_EXISTS, True),
        (grpc.StatusCode.UNAVAILABLE, False),
        (grpc.StatusCode.DEADLINE_EXCEEDED, False),
        (grpc.StatusCode.ABORTED, False),
        (grpc.StatusCode.INTERNAL, False),
        (grpc.StatusCode.UNIMPLEMENTED, False),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, False),
    ],
)
def test_which_refusals_are_acknowledged_and_which_are_retried(code, terminal):
    assert is_terminal(code) is terminal


async def test_a_gateway_whose_secret_the_payment_service_does_not_share_answers_5xx_so_the_psp_retries(
    start_gateway,
):
    """The gateway verifies with its own secret; the payment service refuses the same bytes with its
    own (INVALID_SIGNATURE). That is a deployment fault, not the PSP's: the answer must make the PSP
    deliver again (a 5xx), and it names no internal method."""
    other = "whsec_" + "anothersecret0123456789abc"
    gw = await start_gateway(stripe_webhook_secret=other)
    payload = _event()
    async with gw.client() as c:
        r = await c.post(URL, content=payload, headers={"Stripe-Signature": _sign(payload, other)})
    assert r.status_code == 500, r.text
    assert r.json()["code"] == "UPSTREAM_REFUSED_CALLER"
    assert "HandlePspEvent" not in r.text and other not in r.text


async def test_a_payout_event_the_payment_service_records_for_later_is_counted_accepted(anon):
    # Pay-out events are recorded in the payment service's inbox and applied after the answer
    # (docs/payouts.md): acknowledged, and counted apart from applied and ignored ones.
    event = {
        "id": f"evt_{uuid.uuid4().hex[:24]}",
        "object": "event",
        "created": int(time.time()),
        "type": "payout.paid",
        "account": "acct_gatewaytest",
        "data": {"object": {"id": f"po_{uuid.uuid4().hex[:16]}", "object": "payout", "status": "paid"}},
    }
    payload = json.dumps(event, separators=(",", ":")).encode()
    labels = {"provider": "stripe", "outcome": "accepted"}
    before = REGISTRY.get_sample_value("gateway_webhook_events_total", labels) or 0.0
    r = await anon.post(URL, content=payload, headers={"Stripe-Signature": _sign(payload)})
    assert r.status_code == 200, r.text
    assert REGISTRY.get_sample_value("gateway_webhook_events_total", labels) == before + 1
