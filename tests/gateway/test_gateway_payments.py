"""POST /v1/payments and the other pay-in routes: strict validation that names the field and stores
nothing, translation to payments.v1, and the answers of the payment service as it is in this branch."""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
import structlog.testing
from sqlalchemy import text

from svckit.logging import add_request_context

PROBLEM = "application/problem+json"


def _body(n_orders: int = 2, **overrides) -> dict:
    checkout = f"chk_{uuid.uuid4().hex[:12]}"
    body = {
        "checkout_id": checkout,
        "buyer_info": {"buyer_id": f"buyer_{checkout}", "email": "ada@example.com", "name": "Ada", "country": "DE"},
        "payment_orders": [
            {"payment_order_id": f"{checkout}_{i}", "seller_account": f"seller_{i}", "amount": "25.00",
             "currency": "USD"}
            for i in range(n_orders)
        ],
        "success_url": "https://shop.example.com/paid",
        "cancel_url": "https://shop.example.com/cart",
    }  # fmt: skip
    body.update(overrides)
    return body


def _order(body: dict, i: int = 0, **changes) -> dict:
    out = copy.deepcopy(body)
    out["payment_orders"][i].update(changes)
    return out


async def _stored(services, checkout_id: str) -> tuple[int, int]:
    async with services["payment"].engine.connect() as conn:
        events = await conn.scalar(
            text("SELECT count(*) FROM payment_events WHERE checkout_id = :c"), {"c": checkout_id}
        )
        orders = await conn.scalar(
            text("SELECT count(*) FROM payment_orders WHERE checkout_id = :c OR payment_order_id LIKE :p"),
            {"c": checkout_id, "p": checkout_id + "%"},
        )
    return events, orders


def _bad_cases() -> list[tuple[str, Callable[[], dict], str | None, str | None]]:
    """(name, body-maker, expected code, expected field); None where the test sets them itself."""
    b = _body
    return [
        ("precision", lambda: _order(b(), 0, amount="3.155"), "AMOUNT_PRECISION_EXCEEDED", "payment_orders[0].amount"),
        ("negative", lambda: _order(b(), 1, amount="-1"), "INVALID_AMOUNT", "payment_orders[1].amount"),
        ("exponent", lambda: _order(b(), 0, amount="1e3"), "INVALID_AMOUNT", "payment_orders[0].amount"),
        ("empty amount", lambda: _order(b(), 0, amount=""), "INVALID_AMOUNT", "payment_orders[0].amount"),
        ("json number", lambda: _order(b(), 0, amount=25), "INVALID_REQUEST", "payment_orders[0].amount"),
        ("json float", lambda: _order(b(), 0, amount=25.5), "INVALID_REQUEST", "payment_orders[0].amount"),
        ("zero", lambda: _order(b(), 0, amount="0"), "AMOUNT_NOT_POSITIVE", "payment_orders[0].amount"),
        ("zero cents", lambda: _order(b(), 0, amount="0.00"), "AMOUNT_NOT_POSITIVE", "payment_orders[0].amount"),
        ("too large", lambda: _order(b(), 0, amount="1000000.01"), "AMOUNT_TOO_LARGE", "payment_orders[0].amount"),
        ("unknown currency", lambda: _order(b(1), 0, currency="XYZ"), "UNKNOWN_CURRENCY", "payment_orders[0].currency"),
        ("bad currency", lambda: _order(b(1), 0, currency="U$D"), "INVALID_CURRENCY", "payment_orders[0].currency"),
        ("JPY decimals", lambda: _order(b(1), 0, currency="JPY", amount="10.5"), "AMOUNT_PRECISION_EXCEEDED",
         "payment_orders[0].amount"),
        ("mixed currencies", lambda: _order(b(), 1, currency="EUR"), "MIXED_CURRENCIES", "payment_orders[1].currency"),
        ("no orders", lambda: b(0), "NO_PAYMENT_ORDERS", "payment_orders"),
        ("1000 orders", lambda: b(1000), "TOO_MANY_ORDERS", "payment_orders"),
        ("duplicate order id", lambda: _order(b(), 1, payment_order_id=b()["checkout_id"]), None, None),
        ("bad order id", lambda: _order(b(), 0, payment_order_id="has space"), "INVALID_REQUEST",
         "payment_orders[0].payment_order_id"),
        ("long order id", lambda: _order(b(), 0, payment_order_id="x" * 129), "INVALID_REQUEST",
         "payment_orders[0].payment_order_id"),
        ("bad seller", lambda: _order(b(), 1, seller_account="seller/1"), "INVALID_REQUEST",
         "payment_orders[1].seller_account"),
        ("bad checkout id", lambda: b(checkout_id=""), "INVALID_REQUEST", "checkout_id"),
        ("no buyer id", lambda: b(buyer_info={"email": "a@b.co"}), "INVALID_REQUEST", "buyer_info.buyer_id"),
        ("bad country", lambda: b(buyer_info={"buyer_id": "b1", "country": "Germany"}), "INVALID_REQUEST",
         "buyer_info.country"),
        ("bad email", lambda: b(buyer_info={"buyer_id": "b1", "email": "nope"}), "INVALID_REQUEST", "buyer_info.email"),
        ("unknown field", lambda: b(tip="1.00"), "INVALID_REQUEST", "tip"),
        ("unknown order field", lambda: _order(b(), 0, fee="1.00"), "INVALID_REQUEST", "payment_orders[0].fee"),
        ("ftp url", lambda: b(success_url="ftp://shop.example.com/paid"), "INVALID_REQUEST", "success_url"),
        ("relative url", lambda: b(cancel_url="/cart"), "INVALID_REQUEST", "cancel_url"),
        ("javascript url", lambda: b(cancel_url="javascript:alert(1)"), "INVALID_REQUEST", "cancel_url"),
        ("too many line items", lambda: _order(b(), 0, line_items=[{"name": "Pen", "quantity": 1}] * 21),
         "TOO_MANY_LINE_ITEMS", "payment_orders[0].line_items"),
        ("empty line item name", lambda: _order(b(), 1, line_items=[{"name": " ", "quantity": 1}]),
         "INVALID_LINE_ITEM_NAME", "payment_orders[1].line_items[0].name"),
        ("long line item name", lambda: _order(b(), 0, line_items=[{"name": "x" * 101}]),
         "INVALID_LINE_ITEM_NAME", "payment_orders[0].line_items[0].name"),
        ("two-line item name", lambda: _order(b(), 0, line_items=[{"name": "Lamp", "quantity": 1},
                                                                  {"name": "Lamp\nshade", "quantity": 1}]),
         "INVALID_LINE_ITEM_NAME", "payment_orders[0].line_items[1].name"),
        ("zero quantity", lambda: _order(b(), 0, line_items=[{"name": "Lamp", "quantity": 0}]),
         "INVALID_LINE_ITEM_QUANTITY", "payment_orders[0].line_items[0].quantity"),
        ("quantity above limit", lambda: _order(b(), 0, line_items=[{"name": "Lamp", "quantity": 10_000}]),
         "INVALID_LINE_ITEM_QUANTITY", "payment_orders[0].line_items[0].quantity"),
        ("quantity beyond the wire", lambda: _order(b(), 0, line_items=[{"name": "Lamp", "quantity": 2**40}]),
         "INVALID_REQUEST", "payment_orders[0].line_items[0].quantity"),
        ("string quantity", lambda: _order(b(), 0, line_items=[{"name": "Lamp", "quantity": "2"}]),
         "INVALID_REQUEST", "payment_orders[0].line_items[0].quantity"),
        ("bad payment method", lambda: b(payment_method="card_4242"), "INVALID_REQUEST", "payment_method"),
    ]  # fmt: skip


CASES = _bad_cases()


@pytest.mark.parametrize(("name", "make", "code", "field"), CASES, ids=[c[0] for c in CASES])
async def test_bad_input_is_a_400_problem_naming_the_field_and_stores_nothing(
    client, services, name, make, code, field
):
    body = make()
    if name == "duplicate order id":
        body["payment_orders"][1]["payment_order_id"] = body["payment_orders"][0]["payment_order_id"]
        code, field = "DUPLICATE_PAYMENT_ORDER_ID", "payment_orders[1].payment_order_id"
    body = {k: v for k, v in body.items() if v is not None}
    r = await client.post("/v1/payments", json=body, headers={"Idempotency-Key": uuid.uuid4().hex})
    assert r.status_code == 400, r.text
    assert r.headers["content-type"].startswith(PROBLEM)
    problem = r.json()
    assert problem["code"] == code
    assert field in [e["field"] for e in problem["errors"]]
    assert await _stored(services, body.get("checkout_id") or "chk_none") == (0, 0)


async def test_the_order_limits_are_the_payment_services_and_its_refusal_is_passed_on(client, services):
    from gateway import schemas
    from gateway.config import GatewaySettings
    from svckit.money import format_amount

    limits = services["payment"].settings
    # Configured once, in the payment service: the gateway has no such setting and lets any count through.
    assert not {"max_orders_per_checkout", "max_order_amount_minor"} & set(GatewaySettings.model_fields)
    many = _body(limits.max_orders_per_checkout + 1)
    assert len(
        schemas.create_payment_request(schemas.CreatePaymentBody.model_validate(many)).payment_orders
    ) == (limits.max_orders_per_checkout + 1)
    big = _order(_body(1), 0, amount=format_amount(limits.max_order_amount_minor + 1, "USD"))
    cases = [
        (many, "TOO_MANY_ORDERS", "payment_orders", f"at most {limits.max_orders_per_checkout} per checkout"),
        (big, "AMOUNT_TOO_LARGE", "payment_orders[0].amount",
         f"above the limit of {format_amount(limits.max_order_amount_minor, 'USD')} per order"),
    ]  # fmt: skip
    for body, code, field, limit_text in cases:
        r = await client.post("/v1/payments", json=body, headers={"Idempotency-Key": uuid.uuid4().hex})
        assert r.status_code == 400, r.text
        assert r.headers["content-type"].startswith(PROBLEM)
        problem = r.json()
        assert problem["code"] == code
        assert problem["errors"] == [{"field": field, "message": problem["detail"]}]
        assert limit_text in problem["detail"]
        assert await _stored(services, body["checkout_id"]) == (0, 0)


async def test_missing_idempotency_key_is_400_naming_the_header(client, services):
    body = _body()
    r = await client.post("/v1/payments", json=body)
    assert r.status_code == 400
    assert r.json()["errors"][0]["field"] == "Idempotency-Key"
    assert await _stored(services, body["checkout_id"]) == (0, 0)


async def test_wrong_content_type_is_415(client, services):
    body = _body()
    r = await client.post(
        "/v1/payments",
        content=json.dumps(body),
        headers={"Idempotency-Key": "ct", "content-type": "text/plain"},
    )
    assert r.status_code == 415
    assert r.json()["code"] == "UNSUPPORTED_MEDIA_TYPE"
    r = await client.post(
        "/v1/payments", data={"checkout_id": body["checkout_id"]}, headers={"Idempotency-Key": "ct2"}
    )
    assert r.status_code == 415
    assert await _stored(services, body["checkout_id"]) == (0, 0)


async def test_a_megabyte_body_is_413(client):
    r = await client.post(
        "/v1/payments",
        content=b'{"checkout_id": "' + b"x" * (1024 * 1024) + b'"}',
        headers={"Idempotency-Key": "big", "content-type": "application/json"},
    )
    assert r.status_code == 413
    assert r.json()["code"] == "PAYLOAD_TOO_LARGE"


async def test_a_valid_body_reaches_the_payment_service_translated(client, services):
    body = _body(payment_method=None)
    rid = f"pay-{uuid.uuid4().hex[:8]}"
    key = uuid.uuid4().hex
    with structlog.testing.capture_logs(processors=[add_request_context]) as logs:
        r = await client.post(
            "/v1/payments", json=body, headers={"Idempotency-Key": key, "X-Request-Id": rid}
        )
    assert r.status_code == 201, r.text
    event = r.json()
    assert event["checkout_id"] == body["checkout_id"]
    assert event["hosted_page_url"].startswith("http")
    assert [o["amount"] for o in event["payment_orders"]] == ["25.00", "25.00"]
    assert {o["state"] for o in event["payment_orders"]} == {"executing"}
    reached = [e for e in logs if e.get("service") == "payment" or e.get("request_id") == rid]
    assert any(e.get("request_id") == rid and e.get("idempotency_key") == key for e in reached)


async def test_direct_mode_needs_no_urls(client):
    body = _body(payment_method="pm_card_visa")
    del body["success_url"], body["cancel_url"]
    r = await client.post("/v1/payments", json=body, headers={"Idempotency-Key": uuid.uuid4().hex})
    assert r.status_code == 201, r.text
    assert {o["state"] for o in r.json()["payment_orders"]} == {"success"}


async def _insert_order(services, amount_minor: int = 2500, currency: str = "USD") -> str:
    checkout = f"chk_{uuid.uuid4().hex[:12]}"
    order = f"{checkout}_0"
    now = datetime(2026, 11, 21, 12, 0, 0, 123456, tzinfo=UTC)
    async with services["payment"].engine.begin() as conn:
        await conn.execute(
            text("INSERT INTO payment_events (checkout_id, buyer_info, created_at) VALUES (:c, '{}', :t)"),
            {"c": checkout, "t": now},
        )
        await conn.execute(
            text(
                "INSERT INTO payment_orders (payment_order_id, checkout_id, seller_account, amount_minor, "
                "currency, state, created_at, updated_at) VALUES (:o, :c, 'seller_a', :a, :cur, 'EXECUTING', :t, :t)"
            ),
            {"o": order, "c": checkout, "a": amount_minor, "cur": currency, "t": now},
        )
    return order


async def test_get_payment_order_translates_the_order(client, services):
    order_id = await _insert_order(services, 2590, "USD")
    r = await client.get(f"/v1/payments/{order_id}")
    assert r.status_code == 200, r.text
    order = r.json()
    assert order["payment_order_id"] == order_id
    assert order["amount"] == "25.90" and order["currency"] == "USD"
    assert order["state"] == "executing"
    assert order["created_at"] == "2026-11-21T12:00:00.123456Z"
    assert order["commission"] == "0.00" and order["refunded"] == "0.00"
    assert order["psp_reference"] is None and order["failure_code"] is None
    assert order["wallet_updated"] is False and order["ledger_updated"] is False


async def test_get_unknown_order_is_404_and_bad_ids_are_400(client):
    r = await client.get("/v1/payments/po_unknown_1")
    assert r.status_code == 404
    assert r.json()["code"] == "PAYMENT_ORDER_NOT_FOUND"
    r = await client.get("/v1/payments/bad%20id")
    assert r.status_code == 400
    assert r.json()["errors"][0]["field"] == "payment_order_id"


async def test_refund_amount_is_parsed_in_the_orders_currency(client, services):
    usd = await _insert_order(services, 2500, "USD")
    jpy = await _insert_order(services, 2500, "JPY")
    cases = [(usd, "1.234", "AMOUNT_PRECISION_EXCEEDED"), (jpy, "1.5", "AMOUNT_PRECISION_EXCEEDED"),
             (usd, "0", "AMOUNT_NOT_POSITIVE"), (usd, "-1.00", "INVALID_AMOUNT")]  # fmt: skip
    for order_id, amount, code in cases:
        r = await client.post(f"/v1/payments/{order_id}/refunds", json={"amount": amount},
                              headers={"Idempotency-Key": uuid.uuid4().hex})  # fmt: skip
        assert r.status_code == 400, (amount, r.text)
        assert r.json()["code"] == code
        assert r.json()["errors"][0]["field"] == "amount"
    r = await client.post(f"/v1/payments/{usd}/refunds", json={"amount": 1}, headers={"Idempotency-Key": "n"})
    assert r.status_code == 400 and r.json()["errors"][0]["field"] == "amount"
    r = await client.post(
        f"/v1/payments/{usd}/refunds", json={"reason": "bored"}, headers={"Idempotency-Key": "x"}
    )
    assert r.status_code == 400 and r.json()["errors"][0]["field"] == "reason"
    r = await client.post("/v1/payments/po_unknown_2/refunds", json={"amount": "1.00"},
                          headers={"Idempotency-Key": uuid.uuid4().hex})  # fmt: skip
    assert r.status_code == 404
    r = await client.post(f"/v1/payments/{usd}/refunds", json={"amount": "1.00"})
    assert r.status_code == 400 and r.json()["errors"][0]["field"] == "Idempotency-Key"


async def test_refund_without_body_reaches_the_service(client, services):
    # The inserted order is still EXECUTING: nothing was captured, so nothing can be refunded.
    order_id = await _insert_order(services)
    r = await client.post(f"/v1/payments/{order_id}/refunds", headers={"Idempotency-Key": uuid.uuid4().hex})
    assert r.status_code == 409, r.text
    assert r.json()["code"] == "ORDER_NOT_REFUNDABLE"


async def test_review_validates_and_reaches_the_service(gw, admin_key):
    async with gw.client(admin_key) as admin:
        r = await admin.post("/v1/admin/payments/po_1/review", json={"decision": "maybe"},
                             headers={"Idempotency-Key": uuid.uuid4().hex})  # fmt: skip
        assert r.status_code == 400
        assert r.json()["errors"][0]["field"] == "decision"
        r = await admin.post("/v1/admin/payments/po_1/review", json={"decision": "approve", "note": "ok"},
                             headers={"Idempotency-Key": uuid.uuid4().hex})  # fmt: skip
        assert r.status_code == 404
        assert r.json()["code"] == "PAYMENT_ORDER_NOT_FOUND"


async def test_checkout_and_history_reach_the_service(client):
    r = await client.get("/v1/checkouts/chk_unknown")
    assert (r.status_code, r.json()["code"]) == (404, "CHECKOUT_NOT_FOUND")
    r = await client.get("/v1/payments/po_unknown/history")
    assert (r.status_code, r.json()["code"]) == (404, "PAYMENT_ORDER_NOT_FOUND")
    r = await client.get("/v1/checkouts/bad%20id")
    assert r.status_code == 400


def test_translation_to_the_contract_uses_minor_units_and_back_to_decimal_strings():
    from google.protobuf.timestamp_pb2 import Timestamp

    from gateway import schemas
    from svckit.gen.payments.v1 import payment_service_pb2 as pb

    body = _body(2)
    body["payment_orders"][0].update(amount="1234.56", currency="usd")
    body["payment_orders"][1].update(amount="0.01", currency="USD")
    req = schemas.create_payment_request(schemas.CreatePaymentBody.model_validate(body))
    assert [(o.amount_minor, o.currency) for o in req.payment_orders] == [(123456, "USD"), (1, "USD")]
    assert req.buyer.buyer_id == body["buyer_info"]["buyer_id"] and req.payment_method == ""

    jpy = _order(_body(1), 0, amount="500", currency="JPY")
    req = schemas.create_payment_request(schemas.CreatePaymentBody.model_validate(jpy))
    assert req.payment_orders[0].amount_minor == 500

    ts = Timestamp(seconds=1_790_000_000, nanos=5_000)
    event = pb.PaymentEvent(
        checkout_id="chk_1", mode=pb.PAYMENT_MODE_HOSTED, hosted_page_url="https://psp.example/p/1", create_time=ts,
        buyer=pb.BuyerInfo(buyer_id="b1"),
        payment_orders=[pb.PaymentOrder(
            payment_order_id="po_1", checkout_id="chk_1", seller_account="s1", amount_minor=1234, currency="BHD",
            state=pb.PAYMENT_ORDER_STATE_PARTIALLY_REFUNDED, commission_minor=50, refunded_minor=1000,
            failure_code="", psp_reference="pi_1", create_time=ts, wallet_updated=True,
        )],
    )  # fmt: skip
    out = schemas.event_out(event).model_dump()
    assert out["mode"] == "hosted" and out["hosted_page_url"] == "https://psp.example/p/1"
    assert out["created_at"] == "2026-09-21T14:13:20.000005Z"
    assert out["buyer_info"] == {"buyer_id": "b1", "email": None, "name": None, "country": None}
    order = out["payment_orders"][0]
    assert (order["amount"], order["commission"], order["refunded"]) == ("1.234", "0.050", "1.000")
    assert order["state"] == "partially_refunded"
    assert order["failure_code"] is None and order["psp_reference"] == "pi_1" and order["updated_at"] is None
    assert order["wallet_updated"] is True and order["ledger_updated"] is False

    history = schemas.history_out("po_1", [
        pb.OrderTransition(to_state=pb.PAYMENT_ORDER_STATE_NOT_STARTED, cause="created", create_time=ts),
        pb.OrderTransition(from_state=pb.PAYMENT_ORDER_STATE_EXECUTING, to_state=pb.PAYMENT_ORDER_STATE_FAILED,
                           cause="psp_event:payment_intent.payment_failed", detail="card_declined"),
    ]).model_dump(by_alias=True)  # fmt: skip
    assert history["transitions"][0]["from"] is None and history["transitions"][0]["to"] == "not_started"
    assert (
        history["transitions"][1]["from"] == "executing"
        and history["transitions"][1]["detail"] == "card_declined"
    )


@pytest.mark.parametrize(
    ("currency", "amount", "commission", "refund"),
    [("JPY", "500", "50", "100"), ("BHD", "20.000", "2.000", "0.120"), ("EUR", "20.00", "2.00", "5.55")],
)
async def test_amounts_are_answered_with_the_currencys_decimals(client, currency, amount, commission, refund):
    body = _body(1, payment_method="pm_card_visa")
    del body["success_url"], body["cancel_url"]
    body = _order(body, 0, amount=amount, currency=currency)
    r = await client.post("/v1/payments", json=body, headers={"Idempotency-Key": uuid.uuid4().hex})
    assert r.status_code == 201, r.text
    (order,) = r.json()["payment_orders"]
    assert (order["state"], order["amount"], order["currency"]) == ("success", amount, currency)
    order_id = order["payment_order_id"]
    r = await client.post(
        f"/v1/payments/{order_id}/refunds",
        json={"amount": refund},
        headers={"Idempotency-Key": uuid.uuid4().hex},
    )
    assert r.status_code == 201, r.text
    assert (r.json()["refund"]["amount"], r.json()["payment_order"]["refunded"]) == (refund, refund)
    order = (await client.get(f"/v1/payments/{order_id}")).json()
    assert (order["amount"], order["commission"], order["refunded"]) == (amount, commission, refund)


async def test_a_ledger_account_named_with_its_currency_is_fetched_by_its_full_name(gw, admin_key):
    name = f"asset:cash:gw{uuid.uuid4().hex[:8]}/JPY"
    async with gw.client(admin_key) as admin:
        r = await admin.post(
            "/v1/ledger/accounts",
            json={"name": name, "currency": "JPY"},
            headers={"Idempotency-Key": uuid.uuid4().hex},
        )
        assert r.status_code == 201, r.text
        r = await admin.get(f"/v1/ledger/accounts/{name}")
        assert r.status_code == 200, r.text
        assert (r.json()["name"], r.json()["currency"]) == (name, "JPY")
        r = await admin.post(
            "/v1/ledger/accounts",
            json={"name": f"asset:cash:gw{uuid.uuid4().hex[:8]}/JPY", "currency": "EUR"},
            headers={"Idempotency-Key": uuid.uuid4().hex},
        )
        assert r.status_code == 400, r.text
        assert r.json()["code"] == "CURRENCY_MISMATCH"


@pytest.mark.parametrize(("currency", "amount"), [("BHD", "0.125"), ("KWD", "5.001")])
async def test_an_amount_the_psp_cannot_charge_is_refused_and_nothing_is_stored(
    client, services, currency, amount
):
    body = _body(1, payment_method="pm_card_visa")
    del body["success_url"], body["cancel_url"]
    body = _order(body, 0, amount=amount, currency=currency)
    r = await client.post("/v1/payments", json=body, headers={"Idempotency-Key": uuid.uuid4().hex})
    assert r.status_code == 400, r.text
    problem = r.json()
    assert problem["code"] == "AMOUNT_PRECISION_EXCEEDED"
    assert problem["errors"][0]["field"] == "payment_orders[0].amount"
    assert await _stored(services, body["checkout_id"]) == (0, 0)


async def test_a_refund_the_psp_cannot_move_is_refused_and_the_order_keeps_its_balance(client):
    body = _body(1, payment_method="pm_card_visa")
    del body["success_url"], body["cancel_url"]
    body = _order(body, 0, amount="20.000", currency="BHD")
    r = await client.post("/v1/payments", json=body, headers={"Idempotency-Key": uuid.uuid4().hex})
    assert r.status_code == 201, r.text
    order_id = r.json()["payment_orders"][0]["payment_order_id"]
    r = await client.post(
        f"/v1/payments/{order_id}/refunds",
        json={"amount": "0.005"},
        headers={"Idempotency-Key": uuid.uuid4().hex},
    )
    assert r.status_code == 400, r.text
    assert r.json()["code"] == "AMOUNT_PRECISION_EXCEEDED"
    order = (await client.get(f"/v1/payments/{order_id}")).json()
    assert (order["state"], order["refunded"]) == ("success", "0.000")
    assert (await client.get(f"/v1/payments/{order_id}/history")).status_code == 200


async def test_krona_amounts_reach_the_psp_in_its_own_unit(client, shared_psp):
    """ISK has no minor unit in ISO 4217 (our books) but two decimals in Stripe's API: 1,500 kr is
    charged as 150000, and a refund of 500 kr as 50000."""
    body = _body(1, payment_method="pm_card_visa")
    del body["success_url"], body["cancel_url"]
    body = _order(body, 0, amount="1500", currency="ISK")
    r = await client.post("/v1/payments", json=body, headers={"Idempotency-Key": uuid.uuid4().hex})
    assert r.status_code == 201, r.text
    (order,) = r.json()["payment_orders"]
    assert (order["state"], order["amount"]) == ("success", "1500")
    stripe = shared_psp.client()
    pi = stripe.v1.payment_intents.retrieve(order["psp_reference"])
    assert (pi.amount, pi.currency) == (150000, "isk")
    r = await client.post(
        f"/v1/payments/{order['payment_order_id']}/refunds",
        json={"amount": "500"},
        headers={"Idempotency-Key": uuid.uuid4().hex},
    )
    assert r.status_code == 201, r.text
    assert r.json()["refund"]["amount"] == "500"
    pi = stripe.v1.payment_intents.retrieve(order["psp_reference"])
    refunds = stripe.v1.refunds.list(params={"payment_intent": pi.id})
    assert [rf.amount for rf in refunds.data] == [50000]


@pytest.mark.parametrize(
    ("currency", "amount", "refund"), [("JPY", "500", "100"), ("BHD", "20.000", "0.120")]
)
async def test_history_speaks_of_amounts_as_the_api_does(client, currency, amount, refund):
    body = _body(1, payment_method="pm_card_visa")
    del body["success_url"], body["cancel_url"]
    body = _order(body, 0, amount=amount, currency=currency)
    r = await client.post("/v1/payments", json=body, headers={"Idempotency-Key": uuid.uuid4().hex})
    assert r.status_code == 201, r.text
    order_id = r.json()["payment_orders"][0]["payment_order_id"]
    r = await client.post(
        f"/v1/payments/{order_id}/refunds",
        json={"amount": refund},
        headers={"Idempotency-Key": uuid.uuid4().hex},
    )
    assert r.status_code == 201, r.text
    details = [
        t["detail"] for t in (await client.get(f"/v1/payments/{order_id}/history")).json()["transitions"]
    ]
    assert any(d.endswith(f"for {refund} {currency}") for d in details), details
    assert any(d.endswith(f"refunded {refund} {currency}") for d in details), details


async def test_a_refund_of_a_payment_the_psp_does_not_know_is_an_operator_matter(client, services):
    """Our books say captured; the PSP says no such PaymentIntent. The caller gets a clear 409, not a
    201 with a failed refund; the amount is not held; a retry answers the same; an alert is counted."""
    from prometheus_client import REGISTRY

    order_id = await _insert_order(services, 2500, "USD")
    async with services["payment"].engine.begin() as conn:
        await conn.execute(
            text(
                "UPDATE payment_orders SET state = 'SUCCESS', psp_reference = :pi WHERE payment_order_id = :o"
            ),
            {"pi": f"pi_lost{uuid.uuid4().hex[:16]}", "o": order_id},
        )
    alerts = REGISTRY.get_sample_value("payment_refunds_of_unknown_payments_total") or 0
    key = uuid.uuid4().hex
    for _ in range(2):
        r = await client.post(
            f"/v1/payments/{order_id}/refunds", json={"amount": "5.00"}, headers={"Idempotency-Key": key}
        )
        assert r.status_code == 409, r.text
        assert r.json()["code"] == "PSP_PAYMENT_UNKNOWN"
    assert REGISTRY.get_sample_value("payment_refunds_of_unknown_payments_total") == alerts + 1
    order = (await client.get(f"/v1/payments/{order_id}")).json()
    assert (order["state"], order["refunded"]) == ("success", "0.00")
    async with services["payment"].engine.connect() as conn:
        reserved = await conn.scalar(
            text("SELECT refund_reserved_minor FROM payment_orders WHERE payment_order_id = :o"),
            {"o": order_id},
        )
    assert reserved == 0
