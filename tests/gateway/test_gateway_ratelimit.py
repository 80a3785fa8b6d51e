"""Per-key rate limit: a budget per key, shared by every gateway through Redis, fail-open without Redis."""

from __future__ import annotations

import pytest_asyncio
import redis.asyncio as aioredis
from prometheus_client import REGISTRY

from gateway.ratelimit import KEY_PREFIX
from svckit.devstack.infra import free_port

ORDER_URL = "/v1/payments/po_does_not_exist"
LIMIT = 3


@pytest_asyncio.fixture(scope="module")
async def limited(start_gateway):
    # 3 requests per minute: nothing in a test run refills the budget (one request every 20 s).
    return await start_gateway(rate_limit_requests=LIMIT, rate_limit_window_seconds=60)


@pytest_asyncio.fixture(scope="module")
async def limited_twin(start_gateway):
    return await start_gateway(rate_limit_requests=LIMIT, rate_limit_window_seconds=60)


async def test_the_request_after_the_budget_is_429_with_retry_after(limited, keys):
    _, key = await keys.make("payments")
    async with limited.client(key) as c:
        answers = [await c.get(ORDER_URL) for _ in range(LIMIT + 1)]
    assert [r.status_code for r in answers] == [404] * LIMIT + [429]
    assert [r.headers["ratelimit-remaining"] for r in answers[:LIMIT]] == ["2", "1", "0"]
    refused = answers[-1]
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert refused.json()["code"] == "RATE_LIMITED"
    assert refused.headers["ratelimit-limit"] == str(LIMIT)
    assert refused.headers["ratelimit-remaining"] == "0"
    retry_after = refused.headers["retry-after"]
    assert retry_after.isdigit() and 1 <= int(retry_after) <= 20


async def test_each_key_has_its_own_budget(limited, keys):
    _, first = await keys.make("payments")
    _, second = await keys.make("payments")
    async with limited.client(first) as a, limited.client(second) as b:
        for _ in range(LIMIT):
            assert (await a.get(ORDER_URL)).status_code == 404
        assert (await a.get(ORDER_URL)).status_code == 429
        assert (await b.get(ORDER_URL)).status_code == 404


async def test_two_gateways_share_one_budget_through_redis(limited, limited_twin, keys, infra):
    key, plaintext = await keys.make("payments")
    async with limited.client(plaintext) as a, limited_twin.client(plaintext) as b:
        assert (await a.get(ORDER_URL)).status_code == 404
        assert (await b.get(ORDER_URL)).status_code == 404
        assert (await a.get(ORDER_URL)).status_code == 404
        assert (await b.get(ORDER_URL)).status_code == 429
    client = aioredis.Redis.from_url(infra.redis_url)
    try:
        assert await client.exists(KEY_PREFIX + key.id) == 1  # the state is in Redis, under the hash tag
        assert KEY_PREFIX.startswith("{ratelimit}:")
    finally:
        await client.aclose()


async def test_requests_pass_when_redis_is_down_and_it_is_counted(start_gateway, keys):
    down = await start_gateway(redis_url=f"redis://127.0.0.1:{free_port()}/0", rate_limit_requests=1)
    _, key = await keys.make("payments")
    before = REGISTRY.get_sample_value("gateway_rate_limiter_errors_total") or 0
    async with down.client(key) as c:
        answers = [await c.get(ORDER_URL) for _ in range(3)]
    assert [r.status_code for r in answers] == [404, 404, 404]  # fail-open: the budget of 1 is not enforced
    assert "ratelimit-remaining" not in answers[0].headers
    # Two checks per request: the address's failed-authentication budget, then the key's budget.
    assert REGISTRY.get_sample_value("gateway_rate_limiter_errors_total") - before == 6


async def test_fail_closed_is_available_as_a_setting(start_gateway, keys):
    down = await start_gateway(redis_url=f"redis://127.0.0.1:{free_port()}/0", rate_limit_fail_open=False)
    _, key = await keys.make("payments")
    async with down.client(key) as c:
        r = await c.get(ORDER_URL)
    assert r.status_code == 503
    assert r.json()["code"] == "RATE_LIMITER_UNAVAILABLE"
