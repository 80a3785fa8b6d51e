"""Failed authentications are limited per client address: a key cannot be guessed at full speed."""

from __future__ import annotations

import uuid

import pytest_asyncio

from gateway.__main__ import server_options
from gateway.config import GatewaySettings

ORDER_URL = "/v1/payments/po_does_not_exist"
LIMIT = 4


@pytest_asyncio.fixture(scope="module")
async def strict(start_gateway):
    # 4 failures per minute: nothing in a test run refills the budget (one failure every 15 s).
    return await start_gateway(auth_failure_limit=LIMIT, auth_failure_window_seconds=60)


def _address() -> str:
    """A client address of its own for each test. The test gateways run under uvicorn's defaults,
    which trust X-Forwarded-For from 127.0.0.1 (a proxy on the same host, as configured)."""
    n = uuid.uuid4().int
    return f"10.{n % 250}.{n // 250 % 250}.{n // 62500 % 250 + 1}"


def _bad(addr: str) -> dict[str, str]:
    return {"X-Forwarded-For": addr, "Authorization": "Bearer mpk_" + "A" * 43}


async def test_failures_beyond_the_limit_are_429_with_retry_after(strict):
    addr = _address()
    async with strict.client() as anon:
        answers = [await anon.get(ORDER_URL, headers=_bad(addr)) for _ in range(LIMIT + 2)]
    assert [r.status_code for r in answers] == [401] * LIMIT + [429, 429]
    refused = answers[-1]
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert refused.json()["code"] == "RATE_LIMITED"
    retry_after = refused.headers["retry-after"]
    assert retry_after.isdigit() and 1 <= int(retry_after) <= 60


async def test_a_blocked_address_is_refused_before_its_key_is_looked_at(strict, client_key):
    """Otherwise a guess that happens to be right would stand out from the 429s."""
    addr = _address()
    async with strict.client() as anon:
        for _ in range(LIMIT):
            assert (await anon.get(ORDER_URL, headers=_bad(addr))).status_code == 401
        good = {"X-Forwarded-For": addr, "Authorization": f"Bearer {client_key}"}
        assert (await anon.get(ORDER_URL, headers=good)).status_code == 429


async def test_successful_requests_are_not_counted(strict, client_key):
    addr = _address()
    good = {"X-Forwarded-For": addr, "Authorization": f"Bearer {client_key}"}
    async with strict.client() as anon:
        for _ in range(LIMIT * 3):
            assert (await anon.get(ORDER_URL, headers=good)).status_code == 404
        answers = [await anon.get(ORDER_URL, headers=_bad(addr)) for _ in range(LIMIT + 1)]
    assert [r.status_code for r in answers] == [401] * LIMIT + [429]


async def test_each_address_has_its_own_budget(strict):
    first, second = _address(), _address()
    async with strict.client() as anon:
        for _ in range(LIMIT + 1):
            await anon.get(ORDER_URL, headers=_bad(first))
        assert (await anon.get(ORDER_URL, headers=_bad(first))).status_code == 429
        assert (await anon.get(ORDER_URL, headers=_bad(second))).status_code == 401


async def test_missing_and_malformed_credentials_count_as_failures(strict):
    addr = _address()
    async with strict.client() as anon:
        statuses = [
            (await anon.get(ORDER_URL, headers={"X-Forwarded-For": addr, **extra})).status_code
            for extra in ({}, {"Authorization": "Basic x"}, {"Authorization": "Bearer"}, {}, {})
        ]
    assert statuses == [401] * LIMIT + [429]


def test_forwarded_addresses_are_trusted_only_from_configured_proxies():
    base = {"environment": "development"}
    direct = server_options(GatewaySettings(**base))
    proxied = server_options(GatewaySettings(**base, forwarded_allow_ips="10.0.0.5,10.0.0.6"))
    assert direct["proxy_headers"] is False
    assert proxied["proxy_headers"] is True and proxied["forwarded_allow_ips"] == "10.0.0.5,10.0.0.6"
