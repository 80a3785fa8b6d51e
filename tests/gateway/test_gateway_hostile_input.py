"""Hostile input at the HTTP edge: a fast 4xx problem that names the culprit, and nothing changed.

Headers that travel on as gRPC metadata, JSON bodies with duplicated keys or control characters,
charsets other than UTF-8, and absurdly long amounts."""

from __future__ import annotations

import json
import uuid

import pytest
import structlog.testing
from sqlalchemy import text

from svckit.logging import add_request_context

PROBLEM = "application/problem+json"
ORDER_URL = "/v1/payments/po_does_not_exist"


def _body(**order_changes: str) -> dict:
    checkout = f"chk_{uuid.uuid4().hex[:12]}"
    order = {"payment_order_id": f"{checkout}_0", "seller_account": "seller_0", "amount": "25.00",
             "currency": "USD"}  # fmt: skip
    order.update(order_changes)
    return {
        "checkout_id": checkout,
        "buyer_info": {"buyer_id": f"buyer_{checkout}", "name": "Ada"},
        "payment_orders": [order],
        "success_url": "https://shop.example.com/paid",
        "cancel_url": "https://shop.example.com/cart",
    }


async def _stored(services, checkout_id: str) -> int:
    async with services["payment"].engine.connect() as conn:
        return await conn.scalar(
            text("SELECT count(*) FROM payment_events WHERE checkout_id = :c"), {"c": checkout_id}
        )


def _problem(r, status: int, code: str) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(PROBLEM)
    problem = r.json()
    assert problem["code"] == code, problem
    return problem


def _reached_a_service(logs: list[dict]) -> bool:
    """The services' request interceptor logs every call with its gRPC method."""
    return any(str(e.get("method", "")).startswith("/") for e in logs)


# -- headers that become gRPC metadata ---------------------------------------------------------------

BAD_HEADER_VALUES = [
    ("cyrillic", "ключ-1".encode()),
    ("latin-1 byte", b"key-\xe9"),
    ("emoji", "key-\N{PILE OF POO}".encode()),
]


@pytest.mark.parametrize(("name", "value"), BAD_HEADER_VALUES, ids=[v[0] for v in BAD_HEADER_VALUES])
async def test_a_non_ascii_idempotency_key_is_400_naming_the_header_before_any_call(
    client, services, name, value
):
    body = _body()
    with structlog.testing.capture_logs(processors=[add_request_context]) as logs:
        r = await client.post(
            "/v1/payments",
            content=json.dumps(body).encode(),
            headers=[(b"content-type", b"application/json"), (b"idempotency-key", value)],
        )
    problem = _problem(r, 400, "INVALID_HEADER")
    assert "Idempotency-Key" in problem["detail"]
    assert problem["errors"][0]["field"] == "Idempotency-Key"
    assert not _reached_a_service(logs)
    assert await _stored(services, body["checkout_id"]) == 0


async def test_a_non_ascii_key_on_a_read_is_refused_too(client):
    with structlog.testing.capture_logs(processors=[add_request_context]) as logs:
        r = await client.get(ORDER_URL, headers=[(b"idempotency-key", "ключ".encode())])
    _problem(r, 400, "INVALID_HEADER")
    assert not _reached_a_service(logs)


async def test_a_non_ascii_request_id_is_400_naming_the_header(client):
    with structlog.testing.capture_logs(processors=[add_request_context]) as logs:
        r = await client.get(ORDER_URL, headers=[(b"x-request-id", "запрос-1".encode())])
    problem = _problem(r, 400, "INVALID_HEADER")
    assert problem["errors"][0]["field"] == "X-Request-Id"
    assert not _reached_a_service(logs)


async def test_after_a_bad_header_the_gateway_keeps_serving(client, gw):
    """The defect: a non-ASCII key reached grpc metadata, failed after seconds and stalled every
    request. Now the next requests are answered normally."""
    r = await client.get(ORDER_URL, headers=[(b"idempotency-key", "ключ".encode())])
    assert r.status_code == 400
    async with gw.client() as anon:
        assert (await anon.get("/healthz")).status_code == 200
    r = await client.get(ORDER_URL, headers={"Idempotency-Key": "fine-key"})
    _problem(r, 404, "PAYMENT_ORDER_NOT_FOUND")


# -- JSON bodies -------------------------------------------------------------------------------------


async def test_a_duplicated_key_is_refused_not_read_as_the_last_one(client, services):
    body = _body()
    raw = json.dumps(body).replace('"amount": "25.00"', '"amount": "1.00", "amount": "900.00"')
    assert raw.count('"amount"') == 2
    r = await client.post(
        "/v1/payments",
        content=raw.encode(),
        headers={"Idempotency-Key": uuid.uuid4().hex, "content-type": "application/json"},
    )
    problem = _problem(r, 400, "DUPLICATE_JSON_KEY")
    assert problem["errors"][0]["field"] == "payment_orders[0].amount"
    assert await _stored(services, body["checkout_id"]) == 0


async def test_a_duplicated_top_level_key_is_refused(client, services):
    body = _body()
    raw = json.dumps(body)[:-1] + ', "checkout_id": "chk_other"}'
    r = await client.post(
        "/v1/payments",
        content=raw.encode(),
        headers={"Idempotency-Key": uuid.uuid4().hex, "content-type": "application/json"},
    )
    problem = _problem(r, 400, "DUPLICATE_JSON_KEY")
    assert problem["errors"][0]["field"] == "checkout_id"
    assert await _stored(services, body["checkout_id"]) == 0
    assert await _stored(services, "chk_other") == 0


CONTROL_CASES = [
    ("NUL in a name", {"name": "Ada\x00Lovelace"}, "buyer_info.name"),
    ("escape in a name", {"name": "Ada\x1b[31m"}, "buyer_info.name"),
    ("C1 in a name", {"name": "Ada\x85"}, "buyer_info.name"),
    ("newline in a name", {"name": "Ada\nLovelace"}, "buyer_info.name"),
    ("lone surrogate", {"name": "Ada\ud800"}, "buyer_info.name"),
    ("NUL in an id", {"buyer_id": "buyer\x00"}, "buyer_info.buyer_id"),
]


@pytest.mark.parametrize(("name", "buyer", "field"), CONTROL_CASES, ids=[c[0] for c in CONTROL_CASES])
async def test_control_characters_in_stored_strings_are_refused(client, services, name, buyer, field):
    body = _body()
    body["buyer_info"].update(buyer)
    r = await client.post(
        "/v1/payments",
        # json.dumps escapes them (\u0000, \ud800): the body is valid JSON that decodes to them.
        content=json.dumps(body).encode(),
        headers={"Idempotency-Key": uuid.uuid4().hex, "content-type": "application/json"},
    )
    assert r.status_code == 400, r.text
    problem = r.json()
    assert problem["code"] in ("INVALID_CHARACTER", "INVALID_REQUEST")
    assert field in [e["field"] for e in problem["errors"]]
    assert await _stored(services, body["checkout_id"]) == 0


async def test_a_review_note_may_hold_newlines_and_tabs_but_not_nul(gw, admin_key):
    async with gw.client(admin_key) as admin:
        url = "/v1/admin/payments/po_does_not_exist/review"
        ok = await admin.post(url, json={"decision": "approve", "note": "line 1\n\tline 2"},
                              headers={"Idempotency-Key": uuid.uuid4().hex})  # fmt: skip
        bad = await admin.post(url, json={"decision": "approve", "note": "line 1\x00"},
                               headers={"Idempotency-Key": uuid.uuid4().hex})  # fmt: skip
    _problem(ok, 404, "PAYMENT_ORDER_NOT_FOUND")  # let through to the service
    problem = _problem(bad, 400, "INVALID_CHARACTER")
    assert problem["errors"][0]["field"] == "note"


@pytest.mark.parametrize("charset", ["latin-1", "iso-8859-1", "utf-16", "windows-1252"])
async def test_charsets_other_than_utf8_are_415(client, services, charset):
    body = _body()
    r = await client.post(
        "/v1/payments",
        content=json.dumps(body).encode(),
        headers={"Idempotency-Key": uuid.uuid4().hex, "content-type": f"application/json; charset={charset}"},
    )
    _problem(r, 415, "UNSUPPORTED_MEDIA_TYPE")
    assert await _stored(services, body["checkout_id"]) == 0


async def test_utf8_declared_explicitly_is_fine(client):
    r = await client.post(
        "/v1/payments",
        content=json.dumps(_body(amount="3.155")).encode(),
        headers={"Idempotency-Key": uuid.uuid4().hex, "content-type": "application/json; charset=UTF-8"},
    )
    _problem(r, 400, "AMOUNT_PRECISION_EXCEEDED")  # parsed and validated, not refused as a charset


async def test_a_utf16_body_without_a_charset_is_refused(client, services):
    body = _body()
    r = await client.post(
        "/v1/payments",
        content=json.dumps(body).encode("utf-16"),
        headers={"Idempotency-Key": uuid.uuid4().hex, "content-type": "application/json"},
    )
    assert r.status_code == 400, r.text
    assert r.json()["code"] == "INVALID_REQUEST"
    assert await _stored(services, body["checkout_id"]) == 0


async def test_deeply_nested_json_is_a_400_not_a_crash(client):
    raw = b"[" * 50_000 + b"]" * 50_000
    r = await client.post(
        "/v1/payments",
        content=raw,
        headers={"Idempotency-Key": uuid.uuid4().hex, "content-type": "application/json"},
    )
    _problem(r, 400, "INVALID_REQUEST")


@pytest.mark.parametrize("digits", [40, 5000, 100_000])
async def test_a_huge_amount_is_amount_too_large(client, services, digits):
    body = _body(amount="9" * digits + ".00")
    r = await client.post(
        "/v1/payments",
        content=json.dumps(body).encode(),
        headers={"Idempotency-Key": uuid.uuid4().hex, "content-type": "application/json"},
    )
    problem = _problem(r, 400, "AMOUNT_TOO_LARGE")
    assert problem["errors"][0]["field"] == "payment_orders[0].amount"
    assert len(r.content) < 2000  # the amount is not echoed back
    assert await _stored(services, body["checkout_id"]) == 0


async def test_a_huge_refund_amount_is_amount_too_large(client, services):
    order_id = f"po_{uuid.uuid4().hex[:12]}"
    async with services["payment"].engine.begin() as conn:
        await conn.execute(
            text("INSERT INTO payment_events (checkout_id, buyer_info) VALUES (:c, '{}')"), {"c": order_id}
        )
        await conn.execute(
            text(
                "INSERT INTO payment_orders (payment_order_id, checkout_id, seller_account, amount_minor, "
                "currency, state) VALUES (:o, :o, 'seller_a', 2500, 'USD', 'SUCCESS')"
            ),
            {"o": order_id},
        )
    r = await client.post(
        f"/v1/payments/{order_id}/refunds",
        json={"amount": "1" * 5000},
        headers={"Idempotency-Key": uuid.uuid4().hex},
    )
    problem = _problem(r, 400, "AMOUNT_TOO_LARGE")
    assert problem["errors"][0]["field"] == "amount"
