"""The simulator as its own process with ``--state``: killed (SIGKILL, no shutdown code runs) and started
again on the same file, it still knows everything it answered."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import stripe

KEY = "sk_test_persist"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Proc:
    url: str
    proc: subprocess.Popen[str]

    def client(self) -> Any:
        return stripe.StripeClient(KEY, base_addresses={"api": self.url}, max_network_retries=0)

    def admin(self, method: str, path: str, **kw: Any) -> Any:
        resp = httpx.request(method, self.url + path, timeout=10, **kw)
        resp.raise_for_status()
        return resp.json()

    def kill(self) -> None:
        """SIGKILL: what was answered must already be on disk."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)


@contextmanager
def _sim(state: Path, port: int, config: Path | None = None) -> Iterator[Proc]:
    args = [sys.executable, "-m", "psp_sim", "serve", "--port", str(port), "--seed", "3"]
    args += ["--state", str(state), "--log-level", "warning"]
    if config is not None:
        args += ["--config", str(config)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PSP_SIM_")}
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while True:
        try:
            if httpx.get(url + "/_sim/health", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"simulator did not start: {proc.communicate()[1][-2000:]}")
        time.sleep(0.05)
    try:
        yield Proc(url, proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        if proc.stderr:
            proc.stderr.close()


def test_a_payment_is_refunded_retrieved_and_replayed_after_a_kill(tmp_path: Path) -> None:
    state, port = tmp_path / "sim" / "state.sqlite3", _free_port()
    params = {"amount": 2500, "currency": "eur", "payment_method": "pm_card_visa", "confirm": True}
    with _sim(state, port) as first:
        pi = first.client().v1.payment_intents.create(params=params, options={"idempotency_key": "order-p1"})
        assert pi.status == "succeeded"
        first.kill()
    with _sim(state, port) as second:
        client = second.client()
        again = client.v1.payment_intents.retrieve(pi.id, params={"expand": ["latest_charge"]})
        assert again.status == "succeeded" and again.amount_received == 2500
        assert again.latest_charge.id == pi.latest_charge and again.latest_charge.paid
        # The same key and parameters answer the stored answer; no second PaymentIntent is made.
        replay = client.v1.payment_intents.create(params=params, options={"idempotency_key": "order-p1"})
        assert replay.id == pi.id
        assert replay.last_response.headers.get("Idempotent-Replayed") == "true"
        with pytest.raises(stripe.IdempotencyError):
            client.v1.payment_intents.create(
                params={**params, "amount": 2600}, options={"idempotency_key": "order-p1"}
            )
        refund = client.v1.refunds.create(params={"payment_intent": pi.id, "amount": 1000})
        assert refund.status == "succeeded" and refund.charge == pi.latest_charge
        listed = client.v1.payment_intents.list(params={"limit": 100})
        assert [p.id for p in listed.data] == [pi.id]
        # New ids after a restart never collide with stored ones (a new id generation per start).
        other = client.v1.payment_intents.create(params=params)
        assert other.id != pi.id and other.latest_charge != pi.latest_charge
        before = client.v1.balance.retrieve().to_dict()
        second.kill()
    with _sim(state, port) as third:
        charge = third.client().v1.charges.retrieve(pi.latest_charge)
        assert charge.amount_refunded == 1000 and charge.refunded is False
        balance = third.client().v1.balance.retrieve()
        # Balances are derived from the stored balance transactions: two charges of 2500 less fees
        # (2.9 % + 30 = 103 each) pending, the refund taken from what is available.
        assert balance.to_dict() == before
        assert {b.currency: b.amount for b in balance.pending} == {"eur": 2 * (2500 - 103)}
        assert {b.currency: b.amount for b in balance.available} == {"eur": -1000}


def test_a_hosted_page_and_its_expiry_timer_survive_a_kill(tmp_path: Path) -> None:
    state, port = tmp_path / "state.sqlite3", _free_port()
    line = {
        "price_data": {"currency": "eur", "unit_amount": 700, "product_data": {"name": "Mug"}},
        "quantity": 1,
    }
    session_params = {
        "mode": "payment",
        "success_url": "http://shop.test/ok",
        "cancel_url": "http://shop.test/no",
        "line_items": [line],
    }
    with _sim(state, port) as first:
        paid_later = first.client().v1.checkout.sessions.create(params=session_params)
        left_open = first.client().v1.checkout.sessions.create(params=session_params)
        first.kill()
    with _sim(state, port) as second:
        page = httpx.get(paid_later.url)
        assert page.status_code == 200 and "Mug" in page.text
        paid = httpx.post(
            paid_later.url,
            data={
                "cardnumber": "4242424242424242",
                "exp": "12/34",
                "cvc": "123",
                "name": "Ada",
                "action": "pay",
            },
        )
        assert paid.status_code == 303 and paid.headers["location"] == "http://shop.test/ok"
        # The session's expiry was scheduled before the kill; it still fires when its time comes.
        second.admin("POST", "/_sim/clock/advance", json={"days": 2})
        client = second.client()
        assert client.v1.checkout.sessions.retrieve(left_open.id).status == "expired"
        done = client.v1.checkout.sessions.retrieve(paid_later.id, params={"expand": ["payment_intent"]})
        assert done.status == "complete" and done.payment_intent.status == "succeeded"


@dataclass
class _Hooks:
    received: list[dict[str, Any]]
    port: int


@contextmanager
def _receiver(port: int) -> Iterator[_Hooks]:
    hooks = _Hooks([], port)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            hooks.received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield hooks
    finally:
        server.shutdown()
        server.server_close()


def test_a_webhook_not_yet_delivered_is_delivered_after_a_kill(tmp_path: Path) -> None:
    state, port, hook_port = tmp_path / "state.sqlite3", _free_port(), _free_port()
    config = tmp_path / "sim.json"
    config.write_text(
        json.dumps(
            {
                "webhook_secret": "whsec_persist",
                "webhook_endpoints": [
                    {
                        "url": f"http://127.0.0.1:{hook_port}/hooks",
                        "enabled_events": ["payment_intent.succeeded"],
                    }
                ],
            }
        )
    )
    with _sim(state, port, config) as first:
        # Nobody listens on hook_port yet: the first attempt fails and a retry is queued 60 s later.
        pi = first.client().v1.payment_intents.create(
            params={"amount": 900, "currency": "usd", "payment_method": "pm_card_visa", "confirm": True}
        )
        deadline = time.monotonic() + 10
        while not [a for a in first.admin("GET", "/_sim/webhooks/deliveries")["data"] if a["error"]]:
            assert time.monotonic() < deadline, "the first attempt was never made"
            time.sleep(0.05)
        first.kill()
    with _receiver(hook_port) as hooks, _sim(state, port, config) as second:
        second.admin("POST", "/_sim/clock/advance", json={"minutes": 2})
        deadline = time.monotonic() + 10
        while not hooks.received:
            assert time.monotonic() < deadline, "the queued delivery was not sent after the restart"
            time.sleep(0.05)
        event = hooks.received[0]
        assert event["type"] == "payment_intent.succeeded" and event["data"]["object"]["id"] == pi.id
        ev = second.client().v1.events.retrieve(event["id"])
        assert ev.data.object.id == pi.id


def test_the_state_file_is_wal_sqlite_and_holds_no_api_key(tmp_path: Path) -> None:
    state, port = tmp_path / "state.sqlite3", _free_port()
    with _sim(state, port) as sim:
        sim.client().v1.payment_intents.create(
            params={"amount": 500, "currency": "eur", "payment_method": "pm_card_visa", "confirm": True},
            options={"idempotency_key": "k-secretless"},
        )
        sim.kill()
    db = sqlite3.connect(state)
    try:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        dump = "\n".join(db.iterdump())
    finally:
        db.close()
    assert "k-secretless" in dump and KEY not in dump


def test_reset_empties_the_state_file(tmp_path: Path) -> None:
    state, port = tmp_path / "state.sqlite3", _free_port()
    with _sim(state, port) as first:
        pi = first.client().v1.payment_intents.create(
            params={"amount": 500, "currency": "eur", "payment_method": "pm_card_visa", "confirm": True}
        )
        first.admin("POST", "/_sim/reset", json={})
        first.kill()
    with _sim(state, port) as second:
        with pytest.raises(stripe.InvalidRequestError) as err:
            second.client().v1.payment_intents.retrieve(pi.id)
        assert err.value.code == "resource_missing"


def test_concurrent_answers_all_survive_a_kill(tmp_path: Path) -> None:
    # Requests arriving together share one write (group commit): each answer still waits for it.
    from concurrent.futures import ThreadPoolExecutor

    state, port = tmp_path / "state.sqlite3", _free_port()
    params = {"amount": 300, "currency": "eur", "payment_method": "pm_card_visa", "confirm": True}
    with _sim(state, port) as first:
        client = first.client()
        with ThreadPoolExecutor(8) as pool:
            answered = list(pool.map(lambda i: client.v1.payment_intents.create(params=params).id, range(24)))
        first.kill()
    with _sim(state, port) as second:
        listed = second.client().v1.payment_intents.list(params={"limit": 100})
        assert sorted(p.id for p in listed.data) == sorted(answered)
        assert all(p.status == "succeeded" for p in listed.data)
