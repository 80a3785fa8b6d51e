"""The listings: GET /v1/payments (filters, newest first, keyset pages), GET /v1/payments/{id}/refunds and
GET /v1/sellers/{seller}/wallet, through a real gateway in front of the real services.

Every test narrows the shared database to ids of its own (a buyer, a seller, a checkout), so tests
running alongside add nothing to what it lists."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import pytest

from svckit.gen.common.v1 import money_pb2
from svckit.gen.payments.v1 import payment_service_pb2 as payments_pb
from svckit.gen.wallet.v1 import wallet_service_pb2 as wallet_pb
from svckit.gen.wallet.v1 import wallet_service_pb2_grpc as wallet_grpc

PROBLEM = "application/problem+json"


def _uid(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


async def _pay(
    client,
    buyer: str,
    sellers: list[str],
    amount: str = "10.00",
    currency: str = "USD",
    payment_method: str | None = "pm_card_visa",
) -> list[dict]:
    """One checkout with an order per seller; its orders as answered."""
    checkout = _uid("chk")
    body: dict = {
        "checkout_id": checkout,
        "buyer_info": {"buyer_id": buyer},
        "payment_orders": [
            {
                "payment_order_id": f"{checkout}_{i}",
                "seller_account": s,
                "amount": amount,
                "currency": currency,
            }
            for i, s in enumerate(sellers)
        ],
    }
    if payment_method:
        body["payment_method"] = payment_method
    else:
        body.update(success_url="https://shop.example.com/paid", cancel_url="https://shop.example.com/cart")
    r = await client.post("/v1/payments", json=body, headers={"Idempotency-Key": uuid.uuid4().hex})
    assert r.status_code == 201, r.text
    return r.json()["payment_orders"]


async def _list(client, path: str = "/v1/payments", **params) -> dict:
    r = await client.get(path, params=params)
    assert r.status_code == 200, r.text
    return r.json()


async def _refused(client, path: str, params: dict, status: int, code: str, field: str | None) -> None:
    r = await client.get(path, params=params)
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(PROBLEM)
    assert r.json()["code"] == code, r.text
    if field is not None:
        assert r.json()["errors"][0]["field"] == field


def _ids(page: dict) -> list[str]:
    return [o["payment_order_id"] for o in page["payment_orders"]]


def _newest_first(orders: list[dict]) -> list[str]:
    # The documented order: created_at descending, then payment_order_id descending. ISO 8601 in UTC
    # with the same layout sorts as text.
    ranked = sorted(orders, key=lambda o: (o["created_at"], o["payment_order_id"]), reverse=True)
    return [o["payment_order_id"] for o in ranked]


async def test_filters_narrow_the_list_and_combine(client):
    buyer, seller_a, seller_b = _uid("buyer"), _uid("seller"), _uid("seller")
    paid = await _pay(client, buyer, [seller_a, seller_b])
    declined = await _pay(
        client, buyer, [seller_a], payment_method="pm_card_visa_chargeDeclinedInsufficientFunds"
    )
    hosted = await _pay(client, buyer, [seller_b], payment_method=None)
    assert [o["state"] for o in paid + declined + hosted] == ["success", "success", "failed", "executing"]
    everything = paid + declined + hosted

    page = await _list(client, buyer_id=buyer)
    assert _ids(page) == _newest_first(everything)
    assert page["next_page_token"] is None
    # Each entry is the order as GET /v1/payments/{id} answers it.
    single = await client.get(f"/v1/payments/{hosted[0]['payment_order_id']}")
    assert page["payment_orders"][0] == single.json()

    assert _ids(await _list(client, buyer_id=buyer, state="failed")) == [declined[0]["payment_order_id"]]
    assert _ids(await _list(client, buyer_id=buyer, state=["failed", "executing"])) == _newest_first(
        declined + hosted
    )
    assert _ids(await _list(client, checkout_id=paid[0]["checkout_id"])) == _newest_first(paid)
    assert _ids(await _list(client, seller_account=seller_a)) == _newest_first([paid[0], declined[0]])
    assert _ids(await _list(client, seller_account=seller_b, state="success")) == [
        paid[1]["payment_order_id"]
    ]
    assert _ids(await _list(client, seller_account=seller_b, buyer_id=_uid("buyer"))) == []

    # created_gte is inclusive, created_lt exclusive: the declined checkout's moment splits the list.
    moment = declined[0]["created_at"]
    assert _ids(await _list(client, buyer_id=buyer, created_gte=moment)) == _newest_first(declined + hosted)
    assert _ids(await _list(client, buyer_id=buyer, created_lt=moment)) == _newest_first(paid)
    # Any offset is the same moment.
    shifted = datetime.fromisoformat(moment).astimezone(timezone(timedelta(hours=5, minutes=30)))
    assert _ids(await _list(client, buyer_id=buyer, created_gte=shifted.isoformat())) == _newest_first(
        declined + hosted
    )
    assert _ids(
        await _list(
            client, buyer_id=buyer, created_gte=shifted.isoformat(), created_lt=hosted[0]["created_at"]
        )
    ) == [declined[0]["payment_order_id"]]


async def test_pages_stay_stable_while_orders_are_created(client):
    buyer, seller = _uid("buyer"), _uid("seller")
    first = [(await _pay(client, buyer, [seller], payment_method=None))[0] for _ in range(5)]
    expected = _newest_first(first)

    seen: list[str] = []
    token = None
    pages = 0
    while True:
        params = {"seller_account": seller, "page_size": 2} | ({"page_token": token} if token else {})
        page = await _list(client, **params)
        seen += _ids(page)
        pages += 1
        token = page["next_page_token"]
        if token is None:
            break
        await _pay(client, buyer, [seller], payment_method=None)  # newer than everything being paged
    assert seen == expected  # nothing repeated, nothing skipped, the newcomers not mixed in
    assert pages == 3

    fresh = await _list(client, seller_account=seller, page_size=1000)
    assert len(fresh["payment_orders"]) == 7 and _ids(fresh)[2:] == expected


@pytest.mark.parametrize("page_size", [1001, -1, 2**40])  # 2**40: beyond the services' int32 field
async def test_a_page_size_outside_the_limits_is_refused_not_shortened(client, page_size):
    await _refused(client, "/v1/payments", {"page_size": page_size}, 400, "INVALID_PAGE_SIZE", "page_size")


async def test_every_listing_answers_the_largest_page_and_refuses_a_larger_one(client, gw, admin_key):
    (order,) = await _pay(client, _uid("buyer"), [_uid("seller")])
    listed = await _list(client, seller_account=order["seller_account"], page_size=1000)
    assert _ids(listed) == [order["payment_order_id"]]
    refunds = f"/v1/payments/{order['payment_order_id']}/refunds"
    assert (await _list(client, refunds, page_size=1000))["refunds"] == []
    await _refused(client, refunds, {"page_size": 1001}, 400, "INVALID_PAGE_SIZE", "page_size")
    wallet = f"/v1/sellers/{order['seller_account']}/wallet"
    async with gw.client(admin_key) as admin:
        largest = await _list(admin, wallet, currency="USD", page_size=1000)  # answered: 200
        assert largest["seller_account"] == order["seller_account"]
        await _refused(
            admin, wallet, {"currency": "USD", "page_size": 1001}, 400, "INVALID_PAGE_SIZE", "page_size"
        )


async def test_a_page_token_is_honoured_only_by_the_listing_and_filters_that_returned_it(client):
    buyer, seller = _uid("buyer"), _uid("seller")
    orders = [(await _pay(client, buyer, [seller], payment_method=None))[0] for _ in range(2)]
    token = (await _list(client, seller_account=seller, page_size=1))["next_page_token"]
    assert token
    resumed = await _list(client, seller_account=seller, page_size=1, page_token=token)
    assert _ids(resumed) == _newest_first(orders)[1:]

    for params in (
        {"seller_account": _uid("seller"), "page_token": token},  # another seller
        {"seller_account": seller, "state": "executing", "page_token": token},  # another filter
        {"page_token": token},  # no filter
        {"seller_account": seller, "page_token": "not-a-token"},
        {"seller_account": seller, "page_token": token[:-3]},
        {"seller_account": seller, "page_token": "eyJmIjpudWxsLCJwIjpbXX0"},  # well-formed JSON, foreign
    ):
        await _refused(client, "/v1/payments", params, 400, "INVALID_PAGE_TOKEN", "page_token")
    # A listing's token is not another listing's.
    path = f"/v1/payments/{orders[0]['payment_order_id']}/refunds"
    await _refused(client, path, {"page_token": token}, 400, "INVALID_PAGE_TOKEN", "page_token")


@pytest.mark.parametrize(
    ("params", "code", "field"),
    [
        ({"state": "settled"}, "INVALID_REQUEST", "state[0]"),
        ({"state": ["success", "SUCCESS"]}, "INVALID_REQUEST", "state[1]"),  # names the occurrence
        ({"created_gte": "2026-12-01T00:00:00"}, "INVALID_REQUEST", "created_gte"),  # no offset: ambiguous
        ({"created_gte": "yesterday"}, "INVALID_REQUEST", "created_gte"),
        ({"created_gte": "2026-12-01T00:00:00Z", "created_lt": "2026-12-01T00:00:00Z"}, "INVALID_FILTER",
         "created_lt"),
        ({"created_gte": "2026-12-02T00:00:00Z", "created_lt": "2026-12-01T00:00:00Z"}, "INVALID_FILTER",
         "created_lt"),
        ({"created_lt": "0001-01-01T00:00:00+01:00"}, "INVALID_FILTER", "created_lt"),
        ({"seller_account": "seller/1"}, "INVALID_REQUEST", "seller_account"),
        ({"checkout_id": "x" * 129}, "INVALID_REQUEST", "checkout_id"),
        ({"buyer_id": "has space"}, "INVALID_REQUEST", "buyer_id"),
        ({"page_size": "ten"}, "INVALID_REQUEST", "page_size"),
    ],
)  # fmt: skip
async def test_a_bad_filter_is_a_problem_naming_the_parameter(client, params, code, field):
    await _refused(client, "/v1/payments", params, 400, code, field)


async def test_an_orders_refunds_are_listed_newest_first_in_pages(client):
    (order,) = await _pay(client, _uid("buyer"), [_uid("seller")], amount="10.000", currency="BHD")
    order_id = order["payment_order_id"]
    path = f"/v1/payments/{order_id}/refunds"
    assert await _list(client, path) == {"payment_order_id": order_id, "refunds": [], "next_page_token": None}
    made = []
    for amount in ("1.010", "2.000", "3.500"):
        r = await client.post(path, json={"amount": amount}, headers={"Idempotency-Key": uuid.uuid4().hex})
        assert r.status_code == 201, r.text
        made.append(r.json()["refund"])
    newest_first = sorted(made, key=lambda r: (r["created_at"], r["refund_id"]), reverse=True)

    first = await _list(client, path, page_size=2)
    assert first["refunds"] == newest_first[:2]
    second = await _list(client, path, page_size=2, page_token=first["next_page_token"])
    assert second["refunds"] == newest_first[2:] and second["next_page_token"] is None
    # Amounts as the rest of the API writes them: the currency's decimals, with its code.
    assert sorted((r["amount"], r["currency"]) for r in made) == [
        ("1.010", "BHD"),
        ("2.000", "BHD"),
        ("3.500", "BHD"),
    ]

    await _refused(client, f"/v1/payments/{_uid('po')}/refunds", {}, 404, "PAYMENT_ORDER_NOT_FOUND", None)


async def _credit(channels, seller: str, amounts: list[int], currency: str) -> None:
    stub = wallet_grpc.WalletServiceStub(channels["wallet"])  # as the payment service, which moves money
    for amount in amounts:
        await stub.Credit(
            wallet_pb.CreditRequest(
                seller_id=seller,
                amount=money_pb2.Money(amount_minor=amount, currency=currency),
                reference=wallet_pb.Reference(kind=wallet_pb.REFERENCE_KIND_PAYMENT_ORDER, id=_uid("po")),
            ),
            metadata=[("idempotency-key", uuid.uuid4().hex)],
        )


async def test_a_sellers_wallet_shows_its_balance_and_movements_in_pages(gw, admin_key, channels):
    seller = _uid("seller")
    await _credit(channels, seller, [1010, 2000, 500], "BHD")
    path = f"/v1/sellers/{seller}/wallet"
    async with gw.client(admin_key) as admin:
        first = await _list(admin, path, currency="bhd", page_size=2)
        assert (first["seller_account"], first["currency"]) == (seller, "BHD")
        assert (first["available"], first["reserved"]) == ("3.510", "0.000")
        assert [(m["kind"], m["amount"], m["available_after"]) for m in first["movements"]] == [
            ("credit", "0.500", "3.510"),
            ("credit", "2.000", "3.010"),
        ]
        assert first["movements"][0]["reference"]["kind"] == "payment_order"
        assert first["movements"][0]["currency"] == "BHD" and first["movements"][0]["reservation_id"] is None
        second = await _list(admin, path, currency="BHD", page_size=2, page_token=first["next_page_token"])
        assert [(m["amount"], m["available_after"]) for m in second["movements"]] == [("1.010", "1.010")]
        assert second["next_page_token"] is None and second["available"] == "3.510"

        # Another currency is another wallet: the token of one is refused by the other.
        await _refused(
            admin, path, {"currency": "USD", "page_token": first["next_page_token"]}, 400, "INVALID_PAGE_TOKEN",
            "page_token",
        )  # fmt: skip
        # A seller that never received money has an empty wallet, not an error.
        empty = await _list(admin, f"/v1/sellers/{_uid('seller')}/wallet", currency="JPY")
        assert (empty["available"], empty["reserved"], empty["movements"], empty["updated_at"]) == (
            "0",
            "0",
            [],
            None,
        )

        await _refused(admin, path, {}, 400, "INVALID_REQUEST", "currency")
        await _refused(admin, path, {"currency": "XYZ"}, 400, "UNKNOWN_CURRENCY", "currency")
        await _refused(admin, path, {"currency": "US"}, 400, "INVALID_CURRENCY", "currency")
        await _refused(
            admin, "/v1/sellers/bad%20seller/wallet", {"currency": "USD"}, 400, "INVALID_REQUEST", None
        )


async def test_who_may_read_which_list(gw, keys):
    _, payments_key = await keys.make("payments")
    _, admin_key = await keys.make("admin")
    order_path = f"/v1/payments/{_uid('po')}/refunds"
    wallet = (f"/v1/sellers/{_uid('seller')}/wallet", {"currency": "USD"})
    async with gw.client() as anonymous, gw.client(payments_key) as checkout, gw.client(admin_key) as admin:
        for path, params in (("/v1/payments", {}), (order_path, {}), wallet):
            await _refused(anonymous, path, params, 401, "UNAUTHENTICATED", None)
        # A checkout client lists its payments and refunds, not sellers' wallets.
        assert (await checkout.get("/v1/payments", params={"buyer_id": _uid("buyer")})).status_code == 200
        await _refused(checkout, *wallet, 403, "FORBIDDEN", None)
        # Internal teams read wallets with an admin key; pay-in routes stay the payments scope's.
        assert (await admin.get(wallet[0], params=wallet[1])).status_code == 200
        await _refused(admin, "/v1/payments", {}, 403, "FORBIDDEN", None)
        await _refused(admin, order_path, {}, 403, "FORBIDDEN", None)


async def test_the_documented_states_are_the_services(gw):
    async with gw.client() as anonymous:
        document = (await anonymous.get("/openapi.json")).json()
    (state,) = [p for p in document["paths"]["/v1/payments"]["get"]["parameters"] if p["name"] == "state"]
    documented = set(state["schema"]["anyOf"][0]["items"]["enum"])
    served = {
        name.removeprefix("PAYMENT_ORDER_STATE_").lower()
        for name in payments_pb.PaymentOrderState.keys()  # noqa: SIM118  # an enum wrapper, not a dict
        if name != "PAYMENT_ORDER_STATE_UNSPECIFIED"
    }
    assert documented == served
    for path in (
        "/v1/payments",
        "/v1/payments/{payment_order_id}/refunds",
        "/v1/sellers/{seller_account}/wallet",
    ):
        assert "INVALID_PAGE_TOKEN" in document["paths"][path]["get"]["responses"]["400"]["description"]


async def test_created_range_bounds_are_exact_to_the_microsecond(client):
    buyer = _uid("buyer")
    (order,) = await _pay(client, buyer, [_uid("seller")], payment_method=None)
    at = datetime.fromisoformat(order["created_at"])
    just_after = (at + timedelta(microseconds=1)).isoformat()
    assert _ids(await _list(client, buyer_id=buyer, created_gte=at.isoformat())) == [
        order["payment_order_id"]
    ]
    assert _ids(await _list(client, buyer_id=buyer, created_gte=just_after)) == []
    assert _ids(await _list(client, buyer_id=buyer, created_lt=just_after)) == [order["payment_order_id"]]
