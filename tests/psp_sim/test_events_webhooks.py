"""Events API, webhook signatures (verified by the SDK), event sequences per flow, and delivery retries."""

from __future__ import annotations

import time
from typing import Any
from unittest import mock

import httpx
import pytest
import stripe

from psp_sim.testing import SimServer


def _pay(client: Any, pm: str = "pm_card_visa", **extra: Any) -> Any:
    return client.v1.payment_intents.create(
        params={"amount": 1000, "currency": "usd", "payment_method": pm, "confirm": True, **extra},
        options={"idempotency_key": f"key-{pm}-{time.monotonic_ns()}"},
    )


def test_events_retrieve_and_list(client: Any) -> None:
    pi = _pay(client)
    events = client.v1.events.list(params={"limit": 10})
    assert [e.type for e in events.data] == [
        "payment_intent.succeeded",
        "charge.succeeded",
        "payment_intent.created",
    ]
    ev = client.v1.events.retrieve(events.data[0].id)
    assert ev.id.startswith("evt_") and ev.data.object.id == pi.id and ev.data.object.status == "succeeded"
    assert ev.request.id.startswith("req_") and ev.request.idempotency_key.startswith("key-")
    assert ev.api_version == "2026-10-28.endive"
    # The snapshot is frozen: later changes don't rewrite history.
    created = client.v1.events.list(params={"type": "payment_intent.created"}).data[0]
    assert created.data.object.status == "requires_confirmation"
    assert (
        len(client.v1.events.list(params={"types": ["charge.succeeded", "payment_intent.created"]}).data) == 2
    )
    paged = list(client.v1.events.list(params={"limit": 1}).auto_paging_iter())
    assert len(paged) == 3


def test_event_sequences_per_flow(sim: SimServer, client: Any) -> None:
    def types_since(mark: int) -> list[str]:
        return [e["type"] for e in sim.admin.state("payment_intent")["events"][mark:]]

    _pay(client)
    assert types_since(0) == ["payment_intent.created", "charge.succeeded", "payment_intent.succeeded"]
    mark = len(sim.admin.state()["events"])
    with pytest.raises(stripe.CardError):
        _pay(client, "pm_card_visa_chargeDeclined")
    assert types_since(mark) == ["payment_intent.created", "charge.failed", "payment_intent.payment_failed"]
    mark = len(sim.admin.state()["events"])
    pi = _pay(client, "pm_card_authenticationRequired")
    httpx.post(pi.next_action.redirect_to_url.url, data={"action": "complete"})
    assert types_since(mark) == [
        "payment_intent.created",
        "payment_intent.requires_action",
        "charge.succeeded",
        "payment_intent.succeeded",
    ]
    mark = len(sim.admin.state()["events"])
    client.v1.refunds.create(params={"payment_intent": pi.id, "amount": 100})
    assert types_since(mark) == ["refund.created", "charge.refunded"]


def test_webhook_signature_verifies_with_sdk(sim: SimServer, client: Any, hook) -> None:
    pi = _pay(client)
    sim.admin.wait_for_deliveries(lambda a: len(a) >= 3)
    assert len(hook.received) == 3
    for rec in hook.received:
        event = stripe.Webhook.construct_event(rec.body, rec.headers["Stripe-Signature"], hook.secret)
        assert event.type in {"payment_intent.created", "charge.succeeded", "payment_intent.succeeded"}
        assert rec.headers["Content-Type"].startswith("application/json")
    succeeded = next(r for r in hook.received if r.event["type"] == "payment_intent.succeeded")
    assert succeeded.event["data"]["object"]["id"] == pi.id
    assert hook.secret.startswith("whsec_")


def test_tampered_payload_and_wrong_secret_are_rejected(sim: SimServer, client: Any, hook) -> None:
    _pay(client)
    sim.admin.wait_for_deliveries(lambda a: len(a) >= 1)
    rec = hook.received[0]
    tampered = rec.body.replace('"amount": 1000', '"amount": 1')
    assert tampered != rec.body
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(tampered, rec.headers["Stripe-Signature"], hook.secret)
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(rec.body, rec.headers["Stripe-Signature"], "whsec_wrong")


def test_old_timestamp_is_rejected(sim: SimServer, client: Any, hook) -> None:
    _pay(client)
    sim.admin.wait_for_deliveries(lambda a: len(a) >= 1)
    rec = hook.received[0]
    header = rec.headers["Stripe-Signature"]
    t = int(header.split(",")[0].removeprefix("t="))
    assert abs(t - time.time()) < 60  # signed just now
    stripe.Webhook.construct_event(rec.body, header, hook.secret)
    # Verify the same delivery 10 minutes later: outside the SDK's 300 s tolerance.
    with (
        mock.patch("stripe._webhook.time.time", return_value=t + 600),
        pytest.raises(stripe.SignatureVerificationError, match="tolerance"),
    ):
        stripe.Webhook.construct_event(rec.body, header, hook.secret)


def test_failed_deliveries_retry_with_exponential_backoff(sim: SimServer, client: Any, hook) -> None:
    hook.script = [500, 503, "sleep"]  # two errors, then a timeout, then success
    sim.admin.set_faults([])
    client.v1.payment_intents.create(params={"amount": 100, "currency": "usd"})  # one event
    attempts = sim.admin.wait_for_deliveries(lambda a: len(a) == 1)
    first = attempts[0]
    assert first["status_code"] == 500 and first["next_attempt_at"] == first["sim_time"] + 60
    # The simulated clock is wall time plus an offset: leave a margin for a slow machine.
    sim.admin.advance(seconds=45)
    assert len(sim.admin.wait_for_deliveries()) == 1  # not due yet
    sim.admin.advance(seconds=16)
    attempts = sim.admin.wait_for_deliveries(lambda a: len(a) == 2)
    assert (
        attempts[1]["status_code"] == 503 and attempts[1]["next_attempt_at"] - attempts[1]["sim_time"] == 120
    )
    sim.admin.advance(seconds=121)
    attempts = sim.admin.wait_for_deliveries(lambda a: len(a) == 3, timeout=5)
    assert attempts[2]["error"] == "timeout"
    assert attempts[2]["next_attempt_at"] - attempts[2]["sim_time"] == 240
    sim.admin.advance(seconds=241)
    attempts = sim.admin.wait_for_deliveries(lambda a: len(a) == 4)
    assert attempts[3]["delivered"] is True and attempts[3]["attempt"] == 4
    assert len({r.event["id"] for r in hook.received}) == 1 and len(hook.received) == 4
    # Each attempt carries its own current signature, and every one verifies.
    for rec in hook.received:
        assert stripe.Webhook.construct_event(rec.body, rec.headers["Stripe-Signature"], hook.secret)
    assert client.v1.events.list(params={"delivery_success": "true"}).data[0].type == "payment_intent.created"


def test_delivery_gives_up_after_max_attempts(sim: SimServer, client: Any, hook) -> None:
    hook.script = [500] * 10
    client.v1.payment_intents.create(params={"amount": 100, "currency": "usd"})
    for _ in range(4):
        sim.admin.advance(seconds=600)
    attempts = sim.admin.wait_for_deliveries(lambda a: len(a) >= 4)
    assert [a["attempt"] for a in attempts] == [1, 2, 3, 4] and attempts[-1]["next_attempt_at"] is None
    assert len(client.v1.events.list(params={"delivery_success": "false"}).data) == 1


def test_enabled_events_filter(sim: SimServer, client: Any, hook) -> None:
    only = sim.admin.add_webhook_endpoint(hook.url, enabled_events=["payment_intent.succeeded"])
    try:
        _pay(client)
        attempts = sim.admin.wait_for_deliveries(lambda a: len(a) >= 4)
        assert sorted(a["type"] for a in attempts if a["endpoint_id"] == only["id"]) == [
            "payment_intent.succeeded"
        ]
    finally:
        sim.admin.remove_webhook_endpoint(only["id"])


def test_webhook_endpoint_from_config_and_env() -> None:
    from psp_sim.config import load_config

    cfg = load_config(
        env={
            "PSP_SIM_WEBHOOK_URL": "http://a.test/h,http://b.test/h",
            "PSP_SIM_WEBHOOK_SECRET": "whsec_fixed",
        }
    )
    assert [e["url"] for e in cfg.webhook_endpoints] == ["http://a.test/h", "http://b.test/h"]
    assert cfg.webhook_secret == "whsec_fixed"
    assert [e["enabled_events"] for e in cfg.webhook_endpoints] == [["*"], ["*"]]


def test_webhook_endpoint_from_env_subscribes_to_the_listed_events_only() -> None:
    from psp_sim.config import load_config
    from psp_sim.webhooks import Endpoint

    cfg = load_config(
        env={
            "PSP_SIM_WEBHOOK_URL": "http://a.test/h",
            "PSP_SIM_WEBHOOK_EVENTS": "payment_intent.succeeded, refund.updated",
        }
    )
    (ep,) = cfg.webhook_endpoints
    endpoint = Endpoint("we_1", ep["url"], "whsec_x", ep["enabled_events"])
    assert endpoint.wants("payment_intent.succeeded")
    assert endpoint.wants("refund.updated")
    assert not endpoint.wants("payment_intent.created")
    assert not endpoint.wants("charge.succeeded")


def test_webhook_concurrency_overlaps_one_endpoints_deliveries() -> None:
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from psp_sim.testing import run_simulator

    lock, state = threading.Lock(), {"now": 0, "most": 0, "got": 0}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            with lock:
                state["now"] += 1
                state["most"] = max(state["most"], state["now"])
            time.sleep(0.2)  # long enough for the next deliveries to start meanwhile, if they may
            with lock:
                state["now"] -= 1
                state["got"] += 1
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    config = {
        "seed": 3,
        "webhook_concurrency": 3,
        "webhook_endpoints": [{"url": url, "enabled_events": ["payout.paid"]}],
    }
    try:
        with run_simulator(config) as sim:
            client = sim.client(max_network_retries=0)
            _pay(client, "pm_card_bypassPending", amount=10_000)
            for _ in range(3):
                client.v1.payouts.create(params={"amount": 1000, "currency": "usd"})
            sim.admin.advance(days=2)  # the three are paid at once: one batch of deliveries
            deadline = time.monotonic() + 10
            while state["got"] < 3 and time.monotonic() < deadline:
                time.sleep(0.05)
    finally:
        server.shutdown()
        server.server_close()
    assert state["got"] == 3
    assert state["most"] > 1  # with the default of 1 they would go one after the other
