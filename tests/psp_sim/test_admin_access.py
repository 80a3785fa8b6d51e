"""The ``/_sim/*`` admin routes: loopback clients only unless an admin key is set, and no webhook secret
in any listing (only the answer that creates an endpoint carries its secret, as Stripe's does)."""

from __future__ import annotations

import httpx

from psp_sim.app import create_app
from psp_sim.config import SimConfig, load_config
from psp_sim.testing import SimServer

REMOTE = ("10.20.30.40", 51000)
LOOPBACK = ("127.0.0.1", 51000)
ADMIN_KEY = "simadmin_" + "k" * 24


def _client(config: SimConfig, peer: tuple[str, int]) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=create_app(config), client=peer)
    return httpx.AsyncClient(transport=transport, base_url="http://sim.test")


async def test_a_remote_client_is_refused_without_an_admin_key_configured():
    config = SimConfig(webhook_secret="whsec_remote_secret_9876")
    async with _client(config, REMOTE) as http:
        for method, path in [
            ("GET", "/_sim/webhook_endpoints"),
            ("GET", "/_sim/state"),
            ("POST", "/_sim/reset"),
            ("POST", "/_sim/clock/advance"),
        ]:
            refused = await http.request(method, path)
            assert refused.status_code == 403, (method, path)
            error = refused.json()["error"]
            assert error["type"] == "invalid_request_error"
            assert "PSP_SIM_ADMIN_KEY" in error["message"]
            assert "whsec_remote_secret_9876" not in refused.text
        assert (await http.get("/_sim/clock")).status_code == 403
        # Liveness stays open: it tells nothing but that the simulator runs.
        assert (await http.get("/_sim/health")).status_code == 200
    async with _client(config, LOOPBACK) as http:
        assert (await http.get("/_sim/clock")).status_code == 200


async def test_a_configured_admin_key_is_required_from_every_client():
    config = SimConfig(admin_key=ADMIN_KEY)
    async with _client(config, REMOTE) as http:
        missing = await http.get("/_sim/clock")
        assert missing.status_code == 401
        assert missing.json()["error"]["type"] == "invalid_request_error"
        wrong = await http.get("/_sim/clock", headers={"Authorization": "Bearer simadmin_wrong"})
        assert wrong.status_code == 401
        assert "simadmin_wrong" not in wrong.text
        # An API key is not the admin key.
        api_key = await http.get("/_sim/clock", headers={"Authorization": "Bearer sk_test_x"})
        assert api_key.status_code == 401
        ok = await http.get("/_sim/clock", headers={"Authorization": f"Bearer {ADMIN_KEY}"})
        assert ok.status_code == 200
        assert "now" in ok.json()
    async with _client(config, LOOPBACK) as http:
        assert (await http.get("/_sim/clock")).status_code == 401
        advanced = await http.post(
            "/_sim/clock/advance", json={"seconds": 5}, headers={"Authorization": f"Bearer {ADMIN_KEY}"}
        )
        assert advanced.status_code == 200


def test_the_admin_key_comes_from_PSP_SIM_ADMIN_KEY():
    assert load_config(env={"PSP_SIM_ADMIN_KEY": ADMIN_KEY}).admin_key == ADMIN_KEY
    assert load_config(env={}).admin_key is None


def test_listings_never_show_a_webhook_secret(sim: SimServer):
    secret = "whsec_listing_secret_ab12"
    created = sim.admin.add_webhook_endpoint("http://127.0.0.1:9/hooks", secret=secret)
    try:
        # Created: the one answer that carries the secret, to configure the receiver with.
        assert created["secret"] == secret
        listing = sim.admin.http.get("/_sim/webhook_endpoints")
        state = sim.admin.http.get("/_sim/state")
        for answer in (listing, state):
            assert answer.status_code == 200
            assert secret not in answer.text
            assert sim.webhook_secret not in answer.text  # the default secret either
        (shown,) = [e for e in listing.json()["data"] if e["id"] == created["id"]]
        assert shown["secret_last4"] == "ab12"
        assert "secret" not in shown
        assert listing.json()["default_secret_last4"] == sim.webhook_secret[-4:]
    finally:
        sim.admin.remove_webhook_endpoint(created["id"])


def test_the_test_client_sends_the_admin_key_of_its_simulator():
    from psp_sim.testing import run_simulator

    with run_simulator({"admin_key": ADMIN_KEY}) as server:
        assert server.admin.now() >= 0
        assert httpx.get(f"{server.base_url}/_sim/clock").status_code == 401
