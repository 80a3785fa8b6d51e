"""`python -m gateway apikey ...`, the development key, the settings that guard production, /metrics and
the OpenAPI document."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from pathlib import Path

import pytest
from prometheus_client import REGISTRY
from pydantic import ValidationError

from gateway import apikeys
from gateway.config import GatewaySettings
from svckit.devstack import supervisor

ROOT = Path(__file__).resolve().parents[2]
ORDER_URL = "/v1/payments/po_does_not_exist"


async def _cli(gw, *args: str) -> tuple[int, str, str]:
    env = {
        **os.environ,
        "GATEWAY_DATABASE_URL": gw.settings.database_url,
        "GATEWAY_DATABASE_NAME": gw.settings.database_name,
        "LOG_FORMAT": "console",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway",
        *args,
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    return proc.returncode or 0, out.decode(), err.decode()


async def test_cli_create_list_revoke(gw_nocache):
    name = f"cli-{uuid.uuid4().hex[:6]}"
    code, out, err = await _cli(gw_nocache, "apikey", "create", "--name", name, "--scope", "payments")
    assert code == 0, err
    plaintext = out.strip().splitlines()[-1]
    key_id = next(line.split()[-1] for line in out.splitlines() if line.startswith("id:"))
    assert plaintext.startswith("mpk_") and len(plaintext) == 47
    async with gw_nocache.client(plaintext) as c:
        assert (await c.get(ORDER_URL)).status_code == 404  # let in

        code, out, _ = await _cli(gw_nocache, "apikey", "list")
        assert code == 0
        line = next(line for line in out.splitlines() if line.startswith(key_id))
        assert name in line and "active" in line and plaintext not in out

        code, out, _ = await _cli(gw_nocache, "apikey", "revoke", key_id)
        assert code == 0 and key_id in out
        r = await c.get(ORDER_URL)
        assert r.status_code == 401
        assert r.json()["code"] == "UNAUTHENTICATED"


async def test_unknown_scopes_and_ids_are_refused(keys, gateway_engine):
    with pytest.raises(ValueError, match="scopes"):
        await keys.make("root")
    async with gateway_engine.begin() as conn:
        assert await apikeys.revoke(conn, "key_nope") is None


async def test_the_dev_key_is_upserted_at_start_with_both_scopes(start_gateway, gateway_engine):
    dev_key = "mpk_" + uuid.uuid4().hex + "x" * 11
    first = await start_gateway(environment="development", dev_api_key=dev_key)
    async with first.client(dev_key) as c:
        assert (await c.get(ORDER_URL)).status_code == 404  # payments
        assert (await c.get("/v1/ledger/accounts/asset:missing:dev")).status_code == 404  # admin
    # A second start with the same key (a restart, or a second replica) keeps one row.
    await start_gateway(environment="development", dev_api_key=dev_key)
    async with gateway_engine.connect() as conn:
        rows = (
            await conn.exec_driver_sql(
                "SELECT scopes, revoked_at FROM api_keys WHERE name = 'development' AND key_prefix = %s",
                (dev_key[:10],),
            )
        ).all()
    assert len(rows) == 1
    assert sorted(rows[0].scopes) == ["admin", "payments"] and rows[0].revoked_at is None


def test_production_refuses_missing_webhook_secret_and_dev_keys():
    with pytest.raises(ValidationError, match="stripe_webhook_secret is required"):
        GatewaySettings(environment="production")
    with pytest.raises(ValidationError, match="whsec_"):
        GatewaySettings(environment="production", stripe_webhook_secret="sk_test_123")
    with pytest.raises(ValidationError, match="only allowed with GATEWAY_ENVIRONMENT=development"):
        GatewaySettings(stripe_webhook_secret="whsec_abc", dev_api_key="mpk_" + "a" * 43)
    with pytest.raises(ValidationError, match="dev_api_key must look like"):
        GatewaySettings(environment="development", dev_api_key="hunter2")
    assert GatewaySettings.model_fields["environment"].default == "production"
    assert GatewaySettings.model_fields["database_name"].default == "gateway"
    assert GatewaySettings.model_fields["max_body_bytes"].default == 256 * 1024


def test_make_run_passes_a_dev_key_kept_in_the_data_folder(tmp_path, monkeypatch):
    monkeypatch.delenv("GATEWAY_DEV_API_KEY", raising=False)
    key = supervisor.dev_api_key(tmp_path)
    assert key.startswith("mpk_") and len(key) == 47
    assert supervisor.dev_api_key(tmp_path) == key  # generated once, then reused
    gateway = next(c for c in supervisor.plan_children(key) if c.name == "gateway")
    assert gateway.env["GATEWAY_DEV_API_KEY"] == key
    assert gateway.env["GATEWAY_ENVIRONMENT"] == "development"
    monkeypatch.setenv("GATEWAY_DEV_API_KEY", "mpk_" + "e" * 43)
    assert supervisor.dev_api_key(tmp_path) == "mpk_" + "e" * 43


async def test_metrics_count_requests_by_route_template(client):
    labels = {"method": "GET", "route": "/v1/payments/{payment_order_id}", "status": "404"}
    before = REGISTRY.get_sample_value("gateway_http_requests_total", labels) or 0
    await client.get(f"/v1/payments/po_{uuid.uuid4().hex[:8]}")
    assert REGISTRY.get_sample_value("gateway_http_requests_total", labels) == before + 1
    body = (await client.get("/metrics")).text
    assert "gateway_http_requests_total" in body and "gateway_auth_failures_total" in body
    assert 'route="/v1/payments/po_' not in body  # raw paths never become labels


async def test_openapi_documents_routes_security_and_errors(client):
    spec = (await client.get("/openapi.json")).json()
    paths = spec["paths"]
    for path in (
        "/v1/payments",
        "/v1/payments/{payment_order_id}",
        "/v1/payments/{payment_order_id}/history",
        "/v1/checkouts/{checkout_id}",
        "/v1/payments/{payment_order_id}/refunds",
        "/v1/admin/payments/{payment_order_id}/review",
        "/v1/webhooks/stripe",
    ):
        assert path in paths, path
    create = paths["/v1/payments"]["post"]
    assert {"201", "400", "401", "403", "409", "413", "415", "422", "429"} <= set(create["responses"])
    assert create["security"] == [{"ApiKey": []}]
    assert "security" not in paths["/v1/webhooks/stripe"]["post"]
    assert "ApiKey" in spec["components"]["securitySchemes"]


def test_the_summary_prints_the_key_and_a_checkout_curl_the_gateway_accepts(tmp_path: Path) -> None:
    import json
    import re
    import time
    from types import SimpleNamespace

    from gateway import schemas

    key = "mpk_" + "s" * 43
    stack = SimpleNamespace(
        children=supervisor.plan_children(key), env={"DATABASE_URL": "postgresql://u@h/d", "REDIS_URL": "redis://r"},
        pg=None, standby=None, valkey=None, valkey_cluster=None, data_dir=tmp_path, dev_key=key, tls=supervisor.DevTls(),
    )  # fmt: skip
    with supervisor.console.capture() as captured:
        supervisor._summary(stack, time.monotonic())  # type: ignore[arg-type]  # a namespace with the fields it reads stands in for the stack
    text = captured.get()
    assert f"Authorization: Bearer {key}" in text
    curl_body = re.search(r"-d '(\{.*\})'", text)
    assert curl_body is not None, text
    body = json.loads(curl_body.group(1))
    status_page = "http://127.0.0.1:8000/v1/checkouts/x/status?token=t"
    request = schemas.create_payment_request(schemas.CreatePaymentBody.model_validate(body), status_page)
    assert len({o.seller_account for o in request.payment_orders}) == 2
    # No shop URLs in the example: a buyer without network comes back to the gateway's status page.
    assert "success_url" not in body and "cancel_url" not in body and not request.payment_method
    assert request.success_url == request.cancel_url == status_page
    assert all(o.line_items for o in request.payment_orders)
