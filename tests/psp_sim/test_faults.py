"""Every fault kind, its scoping, its record, and reproducibility from the seed."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest
import stripe

from psp_sim.config import load_config
from psp_sim.testing import SimServer, run_simulator
from tests.psp_sim.stripe_answers import headers_of

PARAMS = {"amount": 1500, "currency": "usd", "payment_method": "pm_card_visa", "confirm": True}


def _count(sim: SimServer, kind: str) -> int:
    return len(sim.admin.state(kind)["objects"].get(kind, []))


def test_latency(sim: SimServer, client: Any) -> None:
    sim.admin.set_faults([{"kind": "latency", "latency_ms": 250, "count": 1}])
    started = time.monotonic()
    client.v1.payment_intents.create(params=PARAMS)
    assert time.monotonic() - started >= 0.25
    started = time.monotonic()
    client.v1.payment_intents.create(params=PARAMS)
    assert time.monotonic() - started < 0.25
    (rec,) = sim.admin.injected_faults("latency")
    assert rec["detail"]["latency_ms"] == 250 and rec["detail"]["path"] == "/v1/payment_intents"


def test_http_500_raises_api_error_and_does_nothing(sim: SimServer, client: Any) -> None:
    sim.admin.set_faults([{"kind": "http_500", "count": 1, "should_retry": False}])
    with pytest.raises(stripe.APIError) as exc:
        client.v1.payment_intents.create(params=PARAMS)
    assert exc.value.http_status == 500 and headers_of(exc.value)["Stripe-Should-Retry"] == "false"
    assert _count(sim, "payment_intent") == 0
    assert len(sim.admin.injected_faults("http_500")) == 1


def test_http_429_is_rate_limit_error_and_not_stored(sim: SimServer, client: Any) -> None:
    sim.admin.set_faults([{"kind": "http_429", "count": 1}])
    with pytest.raises(stripe.RateLimitError):
        client.v1.payment_intents.create(params=PARAMS, options={"idempotency_key": "rl"})
    pi = client.v1.payment_intents.create(params=PARAMS, options={"idempotency_key": "rl"})
    assert pi.status == "succeeded" and "Idempotent-Replayed" not in pi.last_response.headers


def test_connection_drop_before_execution(sim: SimServer, client: Any) -> None:
    sim.admin.set_faults([{"kind": "connection_drop", "count": 1}])
    with pytest.raises(stripe.APIConnectionError):
        client.v1.payment_intents.create(params=PARAMS)
    assert _count(sim, "payment_intent") == 0
    assert sim.admin.injected_faults("connection_drop")[0]["detail"]["method"] == "POST"


def test_drop_after_commit_then_retry_replays_not_double_charge(sim: SimServer) -> None:
    sim.admin.set_faults([{"kind": "drop_after_commit", "count": 1, "path_prefix": "/v1/payment_intents"}])
    no_retry = sim.client(max_network_retries=0)
    with pytest.raises(stripe.APIConnectionError):
        no_retry.v1.payment_intents.create(params=PARAMS, options={"idempotency_key": "trap-1"})
    assert _count(sim, "payment_intent") == 1  # the charge happened
    retried = no_retry.v1.payment_intents.create(params=PARAMS, options={"idempotency_key": "trap-1"})
    assert retried.last_response.headers["Idempotent-Replayed"] == "true"
    assert _count(sim, "payment_intent") == 1 and _count(sim, "charge") == 1
    (rec,) = sim.admin.injected_faults("drop_after_commit")
    assert rec["detail"]["object_id"] == retried.id and rec["detail"]["idempotency_key"] == "trap-1"


def test_drop_after_commit_with_sdk_retries(sim: SimServer) -> None:
    sim.admin.set_faults([{"kind": "drop_after_commit", "count": 1}])
    client = sim.client(max_network_retries=2)
    pi = client.v1.payment_intents.create(params=PARAMS)  # SDK reuses its generated key on the retry
    assert pi.status == "succeeded"
    assert _count(sim, "charge") == 1


def test_error_after_commit_replays_the_500(sim: SimServer, client: Any) -> None:
    sim.admin.set_faults([{"kind": "error_after_commit", "count": 1}])
    with pytest.raises(stripe.APIError):
        client.v1.payment_intents.create(params=PARAMS, options={"idempotency_key": "trap-2"})
    with pytest.raises(stripe.APIError) as again:
        client.v1.payment_intents.create(params=PARAMS, options={"idempotency_key": "trap-2"})
    assert headers_of(again.value)["Idempotent-Replayed"] == "true"
    # The outcome is only learnable by asking: exactly one succeeded PaymentIntent exists.
    (pi,) = client.v1.payment_intents.list().data
    assert pi.status == "succeeded" and _count(sim, "charge") == 1


def test_scope_by_path_method_and_count(sim: SimServer, client: Any) -> None:
    sim.admin.set_faults([{"kind": "http_500", "path_prefix": "/v1/refunds", "method": "POST", "count": 2}])
    pi = client.v1.payment_intents.create(params=PARAMS)  # other path: untouched
    client.v1.refunds.list()  # GET: untouched
    for _ in range(2):
        with pytest.raises(stripe.APIError):
            client.v1.refunds.create(params={"payment_intent": pi.id, "amount": 100})
    assert client.v1.refunds.create(params={"payment_intent": pi.id, "amount": 100}).status == "succeeded"
    assert [f["detail"]["path"] for f in sim.admin.injected_faults()] == ["/v1/refunds", "/v1/refunds"]
    assert httpx.get(f"{sim.base_url}/_sim/faults").json()["rules"][0]["fired"] == 2


def test_rate_is_reproducible_from_the_seed(sim: SimServer, client: Any) -> None:
    def pattern(seed: int) -> list[bool]:
        sim.admin.reset()
        sim.admin.set_faults([{"kind": "http_500", "rate": 0.5}], seed=seed)
        out = []
        for _ in range(16):
            try:
                client.v1.payment_intents.list(params={"limit": 1})
                out.append(False)
            except stripe.APIError:
                out.append(True)
        return out

    a, b, c = pattern(11), pattern(11), pattern(12)
    assert a == b and a != c and 0 < sum(a) < 16


# ---------------------------------------------------------------- webhook faults


def _event_ids(hook) -> list[str]:
    return [r.event["id"] for r in hook.received]


def test_webhook_duplicate(sim: SimServer, client: Any, hook) -> None:
    sim.admin.set_faults([{"kind": "webhook_duplicate", "event_type": "payment_intent.succeeded"}])
    client.v1.payment_intents.create(params=PARAMS)
    sim.admin.wait_for_deliveries(lambda a: len(a) >= 4)
    assert hook.types().count("payment_intent.succeeded") == 2
    ids = [r.event["id"] for r in hook.received if r.event["type"] == "payment_intent.succeeded"]
    assert ids[0] == ids[1]
    assert (
        sim.admin.injected_faults("webhook_duplicate")[0]["detail"]["event_type"]
        == "payment_intent.succeeded"
    )


def test_webhook_out_of_order(sim: SimServer, client: Any, hook) -> None:
    sim.admin.set_faults([{"kind": "webhook_out_of_order", "event_type": "charge.succeeded", "count": 1}])
    client.v1.payment_intents.create(params=PARAMS)
    sim.admin.wait_for_deliveries(lambda a: len(a) >= 3)
    assert hook.types() == ["payment_intent.created", "payment_intent.succeeded", "charge.succeeded"]


def test_webhook_delay_until_clock_advance(sim: SimServer, client: Any, hook) -> None:
    sim.admin.set_faults(
        [{"kind": "webhook_delay", "event_type": "payment_intent.succeeded", "delay_seconds": 900}]
    )
    client.v1.payment_intents.create(params=PARAMS)
    sim.admin.wait_for_deliveries(lambda a: len(a) >= 2)
    assert "payment_intent.succeeded" not in hook.types()
    sim.admin.advance(seconds=901)
    sim.admin.wait_for_deliveries(lambda a: len(a) >= 3)
    assert hook.types()[-1] == "payment_intent.succeeded"


def test_webhook_drop(sim: SimServer, client: Any, hook) -> None:
    sim.admin.set_faults([{"kind": "webhook_drop", "event_type": "payment_intent.succeeded"}])
    client.v1.payment_intents.create(params=PARAMS)
    sim.admin.wait_for_deliveries(lambda a: len(a) >= 2)
    sim.admin.advance(days=1)
    sim.admin.wait_for_deliveries()
    assert "payment_intent.succeeded" not in hook.types()
    (dropped,) = sim.admin.injected_faults("webhook_drop")
    # The event still exists: polling /v1/events is how the system can recover.
    assert client.v1.events.retrieve(dropped["detail"]["event_id"]).type == "payment_intent.succeeded"


# ---------------------------------------------------------------- config file


def test_faults_from_toml_and_json_files(tmp_path) -> None:
    toml = tmp_path / "sim.toml"
    toml.write_text(
        'seed = 3\nfee_fixed_minor = 25\n[[faults]]\nkind = "http_429"\ncount = 1\npath_prefix = "/v1/payouts"\n'
    )
    faults_json = tmp_path / "faults.json"
    faults_json.write_text(json.dumps({"seed": 99, "faults": [{"kind": "latency", "latency_ms": 5}]}))
    cfg = load_config(str(toml), env={"PSP_SIM_FAULTS_FILE": str(faults_json)})
    assert [f["kind"] for f in cfg.faults] == ["http_429", "latency"] and cfg.fault_seed == 99
    with run_simulator(cfg) as other:
        rules = httpx.get(f"{other.base_url}/_sim/faults").json()
        assert rules["seed"] == 99 and [r["kind"] for r in rules["rules"]] == ["http_429", "latency"]
        with pytest.raises(stripe.RateLimitError):
            other.client().v1.payouts.create(params={"amount": 1, "currency": "usd"})


def test_bad_fault_rules_are_rejected(sim: SimServer) -> None:
    resp = httpx.post(f"{sim.base_url}/_sim/faults", json={"faults": [{"kind": "meteor"}]})
    assert resp.status_code == 400 and "unknown kind" in resp.json()["error"]["message"]
