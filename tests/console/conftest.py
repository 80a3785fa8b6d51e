"""The console runs in the gateway: the gateway tests' fixtures (a real gateway in front of the real
services, API keys in its database), and helpers that sign in and create orders through the API."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

import httpx
import pytest_asyncio

from tests.gateway.conftest import (  # noqa: F401  (fixtures, found by pytest through this import)
    Gateway,
    Keys,
    admin_key,
    client,
    client_key,
    gateway_engine,
    gw,
    keys,
    start_gateway,
)

_SIGNIN = re.compile(r'name="signin" value="([^"]+)"')
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')
_ACTION = re.compile(r'name="action_id" value="([0-9a-f]{32})"')


def hidden(pattern: re.Pattern[str], html: str) -> str:
    match = pattern.search(html)
    assert match, f"no {pattern.pattern!r} in page"
    return match.group(1)


def csrf_of(html: str) -> str:
    return hidden(_CSRF, html)


def action_of(html: str) -> str:
    return hidden(_ACTION, html)


async def sign_in(console: httpx.AsyncClient, key: str) -> httpx.Response:
    """Post the sign-in form as a browser would (its one-time token and cookie included)."""
    form = await console.get("/console/sign-in")
    assert form.status_code == 200
    return await console.post("/console/sign-in", data={"signin": hidden(_SIGNIN, form.text), "api_key": key})


@dataclass
class Operator:
    """A browser-like client signed in to the console with a fresh admin key."""

    http: httpx.AsyncClient
    key_id: str
    key_name: str

    async def csrf(self) -> str:
        return csrf_of((await self.http.get("/console/payments")).text)


@pytest_asyncio.fixture
async def operator(gw: Gateway, keys: Keys):  # noqa: F811  (the imported fixtures, requested by name)
    key, plaintext = await keys.make("admin")
    async with httpx.AsyncClient(base_url=gw.url, timeout=10) as http:
        r = await sign_in(http, plaintext)
        assert r.status_code == 303, r.text
        yield Operator(http, key.id, key.name)


async def paid_order(
    api: httpx.AsyncClient,
    amount: str = "25.00",
    currency: str = "USD",
    buyer_name: str = "Ada",
    item: str = "Desk lamp",
) -> str:
    """A checkout of one order charged at once (direct mode); returns the order id."""
    checkout = f"chk_{uuid.uuid4().hex[:12]}"
    body = {
        "checkout_id": checkout,
        "buyer_info": {"buyer_id": f"buyer_{uuid.uuid4().hex[:8]}", "name": buyer_name},
        "payment_orders": [
            {"payment_order_id": f"{checkout}_0", "seller_account": f"seller_{uuid.uuid4().hex[:6]}",
             "amount": amount, "currency": currency, "line_items": [{"name": item, "quantity": 2}]}
        ],
        "payment_method": "pm_card_visa",
    }  # fmt: skip
    r = await api.post("/v1/payments", json=body, headers={"Idempotency-Key": uuid.uuid4().hex})
    assert r.status_code == 201, r.text
    return r.json()["payment_orders"][0]["payment_order_id"]
