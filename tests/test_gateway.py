"""The gateway over real services: liveness, readiness, problem+json, request ids, REST idempotency."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import structlog.testing

from gateway.app import create_app
from gateway.config import GatewaySettings
from svckit.devstack.infra import free_port
from svckit.logging import add_request_context

PROBLEM = "application/problem+json"


def _name() -> str:
    return f"asset:rest:{uuid.uuid4().hex[:10]}"


async def test_healthz_is_ok(http):
    r = await http.get("/healthz")
    assert r.status_code == 200
    assert r.json() == {"status": "ok"}


async def test_readyz_names_every_dependency_and_is_ready(http):
    r = await http.get("/readyz")
    body = r.json()
    assert r.status_code == 200, body
    assert body["status"] == "ready"
    assert set(body["checks"]) == {"payment", "ledger", "wallet", "recon", "postgres", "redis"}
    assert all(check["ok"] for check in body["checks"].values())


async def test_readyz_reports_each_unreachable_dependency(infra):
    # A gateway pointed at closed ports: every check must fail by name, and the answer is 503.
    dead = f"127.0.0.1:{free_port()}"
    settings = infra.settings(
        GatewaySettings,
        database_url=f"postgresql://postgres@127.0.0.1:{free_port()}/postgres",
        redis_url=f"redis://127.0.0.1:{free_port()}/0",
        payment_addr=dead, ledger_addr=dead, wallet_addr=dead, recon_addr=dead,
        readiness_timeout_seconds=0.5, environment="development", migrate_on_start=False,
    )  # fmt: skip
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
            r = await client.get("/readyz")
    body = r.json()
    assert r.status_code == 503
    assert body["status"] == "not_ready"
    assert {name for name, check in body["checks"].items() if not check["ok"]} == {
        "payment", "ledger", "wallet", "recon", "postgres", "redis",
    }  # fmt: skip


async def test_request_id_is_echoed_and_generated(http):
    r = await http.get("/healthz", headers={"X-Request-Id": "abc-123"})
    assert r.headers["x-request-id"] == "abc-123"
    r = await http.get("/healthz", headers={"X-Request-Id": "bad id with spaces"})
    assert r.headers["x-request-id"].startswith("req_")


async def test_post_then_replay_sets_idempotent_replayed(http):
    key = uuid.uuid4().hex
    body = {"name": _name(), "currency": "USD"}
    first = await http.post("/v1/ledger/accounts", json=body, headers={"Idempotency-Key": key})
    second = await http.post("/v1/ledger/accounts", json=body, headers={"Idempotency-Key": key})
    assert first.status_code == 201, first.text
    assert second.status_code == 201
    assert second.json() == first.json()
    assert "idempotent-replayed" not in first.headers
    assert second.headers["idempotent-replayed"] == "true"


async def test_key_reused_with_other_body_is_422_problem(http):
    key = uuid.uuid4().hex
    await http.post(
        "/v1/ledger/accounts", json={"name": _name(), "currency": "USD"}, headers={"Idempotency-Key": key}
    )
    r = await http.post(
        "/v1/ledger/accounts", json={"name": _name(), "currency": "USD"}, headers={"Idempotency-Key": key}
    )
    assert r.status_code == 422
    assert r.headers["content-type"].startswith(PROBLEM)
    assert r.json()["code"] == "IDEMPOTENCY_KEY_REUSED"


async def test_concurrent_duplicates_get_409_with_retry_after_or_the_same_answer(http):
    key = uuid.uuid4().hex
    body = {"name": _name(), "currency": "EUR"}
    responses = await asyncio.gather(
        *(http.post("/v1/ledger/accounts", json=body, headers={"Idempotency-Key": key}) for _ in range(20))
    )
    created = [r for r in responses if r.status_code == 201]
    in_use = [r for r in responses if r.status_code == 409]
    assert len(created) + len(in_use) == 20
    assert created and all(r.json() == created[0].json() for r in created)
    for r in in_use:
        assert r.json()["code"] == "IDEMPOTENCY_KEY_IN_USE"
        assert r.headers["retry-after"] == "1"


async def test_domain_errors_become_problem_json_with_stable_codes(http):
    r = await http.get("/v1/ledger/accounts/asset:missing:nothing")
    assert r.status_code == 404
    assert r.headers["content-type"].startswith(PROBLEM)
    body = r.json()
    assert body["code"] == "ACCOUNT_NOT_FOUND"
    assert body["status"] == 404
    assert body["request_id"] == r.headers["x-request-id"]

    r = await http.post(
        "/v1/ledger/accounts",
        json={"name": "bogus:x", "currency": "USD"},
        headers={"Idempotency-Key": "k-bogus"},
    )
    assert r.status_code == 400
    assert r.json()["code"] == "INVALID_ACCOUNT_TYPE"
    assert r.json()["errors"][0]["field"] == "name"

    name = _name()
    await http.post(
        "/v1/ledger/accounts",
        json={"name": name, "currency": "USD"},
        headers={"Idempotency-Key": uuid.uuid4().hex},
    )
    r = await http.post(
        "/v1/ledger/accounts",
        json={"name": name, "currency": "USD"},
        headers={"Idempotency-Key": uuid.uuid4().hex},
    )
    assert r.status_code == 409
    assert r.json()["code"] == "ACCOUNT_ALREADY_EXISTS"


async def test_validation_errors_name_the_field(http):
    r = await http.post(
        "/v1/ledger/accounts", json={"name": "asset:x:y", "currency": 840}, headers={"Idempotency-Key": "v1"}
    )
    assert r.status_code == 400
    body = r.json()
    assert body["code"] == "INVALID_REQUEST"
    assert [e["field"] for e in body["errors"]] == ["currency"]

    r = await http.post("/v1/ledger/accounts", json={"name": "asset:x:y", "currency": "USD"})
    assert r.status_code == 400
    assert r.json()["code"] == "INVALID_REQUEST"
    assert r.json()["errors"][0]["field"] == "Idempotency-Key"


async def test_unknown_route_and_oversized_body_are_problems(http):
    r = await http.get("/v1/nothing-here")
    assert r.status_code == 404
    assert r.json()["code"] == "NOT_FOUND"
    r = await http.post("/v1/ledger/accounts", content=b"x" * (65 * 1024),
                        headers={"Idempotency-Key": "big", "content-type": "application/json"})  # fmt: skip
    assert r.status_code == 413
    assert r.json()["code"] == "PAYLOAD_TOO_LARGE"


async def test_request_id_reaches_the_grpc_service_logs(http):
    rid = f"trace-{uuid.uuid4().hex[:8]}"
    with structlog.testing.capture_logs(processors=[add_request_context]) as logs:
        await http.get("/v1/ledger/accounts/asset:missing:trace", headers={"X-Request-Id": rid})
    # The ledger service logs the refused call with the request id it received in gRPC metadata.
    refused = [e for e in logs if e["event"] == "rpc refused"]
    assert refused and refused[0]["request_id"] == rid
    assert refused[0]["reason"] == "ACCOUNT_NOT_FOUND"


async def test_openapi_docs_are_served(http):
    r = await http.get("/docs")
    assert r.status_code == 200
    spec = (await http.get("/openapi.json")).json()
    assert "/v1/ledger/accounts" in spec["paths"]
