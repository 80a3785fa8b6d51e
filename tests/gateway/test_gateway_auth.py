"""API keys: who gets in, where, and how fast a revocation bites."""

from __future__ import annotations

import asyncio

from gateway.apikeys import hash_key

PROBLEM = "application/problem+json"
ORDER_URL = "/v1/payments/po_does_not_exist"  # a read that reaches the payment service: 404 once let in


def _is_401(r) -> None:
    assert r.status_code == 401, r.text
    assert r.headers["content-type"].startswith(PROBLEM)
    assert r.json()["code"] == "UNAUTHENTICATED"
    assert r.headers["www-authenticate"].startswith("Bearer")


async def test_a_valid_key_is_let_through_to_the_service(client):
    r = await client.get(ORDER_URL)
    assert r.status_code == 404
    assert r.json()["code"] == "PAYMENT_ORDER_NOT_FOUND"


async def test_missing_malformed_unknown_and_garbage_keys_are_401(gw, client_key):
    async with gw.client() as anon:
        _is_401(await anon.get(ORDER_URL))
        _is_401(await anon.get(ORDER_URL, headers={"Authorization": f"Basic {client_key}"}))
        _is_401(await anon.get(ORDER_URL, headers={"Authorization": "Bearer"}))
        _is_401(await anon.get(ORDER_URL, headers={"Authorization": "Bearer mpk_" + "A" * 43}))
        _is_401(await anon.get(ORDER_URL, headers={"Authorization": "Bearer ' OR 1=1 --"}))
        _is_401(await anon.get(ORDER_URL, headers={"Authorization": f"Bearer {client_key}x"}))


async def test_authentication_comes_before_body_validation(gw):
    async with gw.client() as anon:
        r = await anon.post(
            "/v1/payments", content=b"{not json", headers={"content-type": "application/json"}
        )
    _is_401(r)


async def test_a_revoked_key_is_401(gw_nocache, keys):
    key, plaintext = await keys.make("payments")
    await keys.revoke(key.id)
    async with gw_nocache.client(plaintext) as c:
        _is_401(await c.get(ORDER_URL))


async def test_wrong_scope_is_403(gw, client_key, admin_key):
    async with gw.client(client_key) as payments_only:
        r = await payments_only.post(
            "/v1/admin/payments/po_1/review", json={"decision": "approve"}, headers={"Idempotency-Key": "r1"}
        )
        assert r.status_code == 403
        assert r.json()["code"] == "FORBIDDEN"
        r = await payments_only.get("/v1/ledger/accounts/asset:bank:operating/USD")
        assert r.status_code == 403
    async with gw.client(admin_key) as admin_only:
        r = await admin_only.get(ORDER_URL)
        assert r.status_code == 403
        assert "payments" in r.json()["detail"]
        r = await admin_only.get("/v1/ledger/accounts/asset:missing:x")
        assert r.status_code == 404  # let in; the ledger answers


async def test_open_routes_need_no_key(gw):
    async with gw.client() as anon:
        for path in ("/healthz", "/readyz", "/docs", "/openapi.json", "/metrics"):
            r = await anon.get(path)
            assert r.status_code == 200, (path, r.text)
        # The webhook is authenticated by its signature, not a key: 400, never 401.
        r = await anon.post("/v1/webhooks/stripe", content=b"{}")
        assert r.status_code == 400
        assert r.json()["code"] == "INVALID_SIGNATURE"


async def test_only_the_hash_of_a_key_is_stored(keys, gateway_engine):
    key, plaintext = await keys.make("payments")
    async with gateway_engine.connect() as conn:
        row = (await conn.exec_driver_sql("SELECT * FROM api_keys WHERE id = %s", (key.id,))).mappings().one()
    assert row["key_hash"] == hash_key(plaintext)
    assert plaintext not in {str(v) for v in row.values()}
    assert plaintext.startswith(row["key_prefix"])


async def test_revocation_takes_effect_only_after_the_cache_ttl(start_gateway, keys):
    long_ttl = await start_gateway(api_key_cache_ttl_seconds=300)
    short_ttl = await start_gateway(api_key_cache_ttl_seconds=0.3)
    key, plaintext = await keys.make("payments")
    async with long_ttl.client(plaintext) as a, short_ttl.client(plaintext) as b:
        assert (await a.get(ORDER_URL)).status_code == 404  # authenticated, now cached in both
        assert (await b.get(ORDER_URL)).status_code == 404
        await keys.revoke(key.id)
        assert (await a.get(ORDER_URL)).status_code == 404  # still cached: the documented window
        await asyncio.sleep(0.6)  # let the short TTL lapse
        _is_401(await b.get(ORDER_URL))
        assert (await a.get(ORDER_URL)).status_code == 404


async def test_key_database_down_is_503_not_401(start_gateway, client_key):
    from svckit.devstack.infra import free_port

    down = await start_gateway(database_url=f"postgresql://postgres@127.0.0.1:{free_port()}/postgres",
                               migrate_on_start=False)  # fmt: skip
    async with down.client(client_key) as c:
        r = await c.get(ORDER_URL)
    assert r.status_code == 503
    assert r.json()["code"] == "AUTHENTICATION_UNAVAILABLE"
    assert r.headers["retry-after"] == "1"
