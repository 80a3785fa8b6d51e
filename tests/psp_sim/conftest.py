"""Fixtures for the PSP simulator tests: one in-process simulator per session, reset before every test."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from psp_sim.testing import SimServer, run_simulator

TEST_CONFIG = {
    "seed": 7,
    "webhook_retry_base_seconds": 60,
    "webhook_max_attempts": 4,
    "webhook_timeout_seconds": 0.5,
}


@pytest.fixture(scope="session")
def sim() -> Iterator[SimServer]:
    with run_simulator(TEST_CONFIG) as server:
        yield server


@pytest.fixture(autouse=True)
def _fresh_state(request: pytest.FixtureRequest) -> None:
    if "sim" in request.fixturenames:
        request.getfixturevalue("sim").admin.reset()


@pytest.fixture
def client(sim: SimServer) -> Any:
    return sim.client(max_network_retries=0)


@dataclass
class Received:
    headers: dict[str, str]
    body: str

    @property
    def event(self) -> dict[str, Any]:
        return json.loads(self.body)


@dataclass
class WebhookReceiver:
    """A local HTTP endpoint that records deliveries; ``script`` holds statuses (or "sleep") to answer with."""

    url: str = ""
    secret: str = ""
    endpoint_id: str = ""
    received: list[Received] = field(default_factory=list)
    script: list[int | str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def ok_events(self) -> list[dict[str, Any]]:
        return [r.event for r in self.received]

    def types(self) -> list[str]:
        return [r.event["type"] for r in self.received]


@pytest.fixture
def hook(sim: SimServer) -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"])).decode()
            with receiver.lock:
                action = receiver.script.pop(0) if receiver.script else 200
                receiver.received.append(Received(dict(self.headers.items()), body))
            if action == "sleep":
                time.sleep(1.0)  # longer than the simulator's 0.5 s webhook timeout
                action = 200
            self.send_response(int(action))
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/webhooks/stripe"
    ep = sim.admin.add_webhook_endpoint(receiver.url)
    receiver.secret = ep["secret"]
    receiver.endpoint_id = ep["id"]
    try:
        yield receiver
    finally:
        sim.admin.remove_webhook_endpoint(ep["id"])
        server.shutdown()
        server.server_close()
