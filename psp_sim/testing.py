"""Start the simulator inside a test process and drive its admin API.

    from psp_sim.testing import run_simulator

    with run_simulator({"webhook_endpoints": [{"url": hook_url}]}) as sim:
        client = sim.client()                       # stripe.StripeClient pointed at the simulator
        pi = client.v1.payment_intents.create(params={...})
        sim.admin.advance(days=2)                   # move simulated time; due work runs at once
        sim.admin.set_faults([{"kind": "http_500", "count": 1}])
        assert sim.admin.injected_faults("http_500")

The server is uvicorn in a daemon thread on a free port (its own event loop), so synchronous tests and
the ``stripe`` SDK can call it directly. ``sim.app`` is the live :class:`~psp_sim.app.SimApp`, for reads only.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx

from psp_sim.app import SimApp
from psp_sim.config import SimConfig

__all__ = ["SimAdmin", "SimServer", "run_simulator"]

DEFAULT_API_KEY = "sk_test_psp_sim"


class SimAdmin:
    """Thin client for the ``/_sim/*`` endpoints; every method returns parsed JSON."""

    def __init__(self, base_url: str, admin_key: str | None = None) -> None:
        headers = {"Authorization": f"Bearer {admin_key}"} if admin_key else None
        self.http = httpx.Client(base_url=base_url, timeout=10, headers=headers)

    def _call(self, method: str, path: str, **kw: Any) -> Any:
        resp = self.http.request(method, path, **kw)
        resp.raise_for_status()
        return resp.json()

    def state(self, *kinds: str) -> dict[str, Any]:
        """Objects by kind (``payment_intent``, ``charge``, …), balances, events, faults."""
        return self._call("GET", "/_sim/state", params=[("kinds[]", k) for k in kinds])

    def reset(self, *, keep_faults: bool = False) -> None:
        """Drop every object, event, idempotency key and queued webhook (endpoints and clock stay)."""
        self._call("POST", "/_sim/reset", json={"faults": not keep_faults})

    def now(self) -> int:
        return self._call("GET", "/_sim/clock")["now"]

    def advance(self, seconds: int = 0, *, minutes: int = 0, hours: int = 0, days: int = 0) -> int:
        """Move simulated time forward and run what became due; returns the new simulated now."""
        body = {"seconds": seconds, "minutes": minutes, "hours": hours, "days": days}
        return self._call("POST", "/_sim/clock/advance", json=body)["now"]

    def set_faults(
        self, faults: list[dict[str, Any]], *, seed: int | None = None, replace: bool = True
    ) -> None:
        self._call("POST", "/_sim/faults", json={"faults": faults, "seed": seed, "replace": replace})

    def clear_faults(self) -> None:
        self._call("DELETE", "/_sim/faults")

    def injected_faults(self, kind: str | None = None) -> list[dict[str, Any]]:
        return self._call("GET", "/_sim/faults/injected", params={"kind": kind} if kind else None)["data"]

    def add_webhook_endpoint(
        self, url: str, *, secret: str | None = None, enabled_events: list[str] | None = None
    ) -> dict[str, Any]:
        """Returns ``{"id", "url", "secret", …}``; ``secret`` is the ``whsec_`` to verify with."""
        return self._call(
            "POST",
            "/_sim/webhook_endpoints",
            json={"url": url, "secret": secret, "enabled_events": enabled_events},
        )

    def remove_webhook_endpoint(self, endpoint_id: str) -> None:
        self._call("DELETE", f"/_sim/webhook_endpoints/{endpoint_id}")

    def webhook_deliveries(self) -> list[dict[str, Any]]:
        """Every delivery attempt: event_id, type, attempt, status_code, error, next_attempt_at, …"""
        return self._call("GET", "/_sim/webhooks/deliveries")["data"]

    def wait_for_deliveries(
        self, predicate: Callable[[list[dict[str, Any]]], bool] | None = None, timeout: float = 5.0
    ) -> list[dict[str, Any]]:
        """Poll until nothing is due or sending and ``predicate(attempts)`` holds; raise on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            data = self._call("GET", "/_sim/webhooks/deliveries")
            if data["idle"] and (predicate is None or predicate(data["data"])):
                return data["data"]
            if time.monotonic() > deadline:
                raise TimeoutError(f"webhook deliveries not settled: {data['data'][-5:]}")
            time.sleep(0.01)

    def run_payouts(self, account: str | None = None) -> list[dict[str, Any]]:
        """Automatic payout of the whole available balance, linking the swept balance transactions."""
        return self._call("POST", "/_sim/payouts/run", json={"account": account})["data"]

    def close(self) -> None:
        self.http.close()


@dataclass
class SimServer:
    base_url: str
    api_key: str
    admin: SimAdmin
    app: SimApp

    def client(self, **kwargs: Any) -> Any:
        """A ``stripe.StripeClient`` for this simulator (keyword arguments go to the constructor)."""
        import stripe

        kwargs.setdefault("base_addresses", {"api": self.base_url, "files": self.base_url})
        return stripe.StripeClient(self.api_key, **kwargs)

    @property
    def webhook_secret(self) -> str:
        """Secret used by endpoints added without their own."""
        return self.app.webhooks.default_secret


@contextmanager
def run_simulator(
    config: SimConfig | Mapping[str, Any] | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    api_key: str = DEFAULT_API_KEY,
) -> Iterator[SimServer]:
    """Run a simulator for the ``with`` block; ``port=0`` picks a free port. Stops it on exit."""
    import uvicorn

    if config is None:
        cfg = SimConfig()
    elif isinstance(config, SimConfig):
        cfg = config
    else:
        cfg = SimConfig.from_mapping(dict(config))
    app = SimApp(cfg)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    bound_port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=host,
            port=bound_port,
            lifespan="on",
            log_level="warning",
            # uvicorn's own dictConfig would close every logging handler of the host process (pytest's too).
            log_config=None,
            access_log=False,
            http="httptools",
            loop="asyncio",
        )
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True, name="psp-sim")
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("PSP simulator did not start")
        time.sleep(0.01)
    base_url = f"http://{host}:{bound_port}"
    admin = SimAdmin(base_url, cfg.admin_key)
    try:
        yield SimServer(base_url, api_key, admin, app)
    finally:
        admin.close()
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
