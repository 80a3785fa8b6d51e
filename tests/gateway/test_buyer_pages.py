"""The buyer's pages on the gateway, through HTTP: the 3-D Secure return, the signed status page, line
items, and the e-mail typed on the hosted page. No API key is sent to a page."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from svckit.logging import configure_logging
from tests.conftest import configure_test_logging

HTML = "text/html"


def _body(*amounts: str, currency: str = "USD", **extra: Any) -> dict[str, Any]:
    run = uuid.uuid4().hex[:10]
    body: dict[str, Any] = {
        "checkout_id": f"chk_bp_{run}",
        "buyer_info": {"buyer_id": f"buyer_bp_{run}"},
        "payment_orders": [
            {
                "payment_order_id": f"po_bp_{run}_{i}",
                "seller_account": f"seller_bp_{i}",
                "amount": amount,
                "currency": currency,
            }
            for i, amount in enumerate(amounts)
        ],
    }
    body.update(extra)
    return body


async def _create(http: httpx.AsyncClient, body: dict[str, Any]) -> dict[str, Any]:
    reply = await http.post("/v1/payments", json=body, headers={"Idempotency-Key": uuid.uuid4().hex})
    assert reply.status_code == 201, reply.text
    return reply.json()


async def _until(check, what: str, within_seconds: float = 20.0) -> Any:
    deadline = asyncio.get_running_loop().time() + within_seconds
    while not (result := await check()):
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)
    return result


async def _three_d_secure(http: httpx.AsyncClient, **urls: str) -> dict[str, Any]:
    """A direct-mode checkout waiting on 3-D Secure."""
    event = await _create(http, _body("8.00", payment_method="pm_card_authenticationRequired", **urls))
    order = event["payment_orders"][0]
    assert order["state"] == "pending" and "/3ds/" in order["next_action_url"], order
    return event


async def _authenticate(next_action_url: str, action: str) -> str:
    """The buyer's answer on the simulator's challenge page; returns where the PSP sends the browser."""
    async with httpx.AsyncClient(timeout=10) as buyer:
        reply = await buyer.post(next_action_url, data={"action": action})
    assert reply.status_code in (302, 303), reply.text
    return reply.headers["location"]


def _pi(event: dict[str, Any]) -> str:
    return event["payment_orders"][0]["psp_reference"]


@pytest.mark.parametrize(("action", "lands_on"), [("complete", "paid"), ("fail", "cart")])
async def test_the_return_from_3ds_redirects_to_the_checkouts_own_url_by_outcome(
    http, gateway_url, action, lands_on
):
    urls = {"success_url": "https://shop.example.com/paid", "cancel_url": "https://shop.example.com/cart"}
    event = await _three_d_secure(http, **urls)
    back = await _authenticate(event["payment_orders"][0]["next_action_url"], action)
    assert back.startswith(f"{gateway_url}/v1/payments/return?")
    async with httpx.AsyncClient(timeout=10) as browser:  # no API key: a browser follows a redirect
        reply = await browser.get(back)
    assert reply.status_code == 303
    assert reply.headers["location"] == f"https://shop.example.com/{lands_on}"
    # The URL we came from holds the client secret: it must not follow the buyer to the shop's site.
    assert reply.headers["referrer-policy"] == "no-referrer"


async def test_the_return_without_urls_lands_on_the_status_page_showing_the_outcome(http):
    event = await _three_d_secure(http)
    back = await _authenticate(event["payment_orders"][0]["next_action_url"], "complete")
    async with httpx.AsyncClient(timeout=10) as browser:
        reply = await browser.get(back)
        assert reply.status_code == 303
        assert reply.headers["location"] == event["status_page_url"]

        async def paid() -> httpx.Response | None:
            page = await browser.get(event["status_page_url"])
            return page if 'data-state="success"' in page.text else None

        page = await _until(paid, "the status page to show the order paid")
    assert page.headers["content-type"].startswith(HTML)
    assert "8.00 USD" in page.text and "Paid" in page.text
    assert 'http-equiv="refresh"' not in page.text  # final: it stops reloading


async def test_the_return_ignores_urls_it_is_handed(http, gateway_url):
    """No open redirect: only the URLs stored with the checkout are ever a target."""
    event = await _three_d_secure(
        http, success_url="https://shop.example.com/paid", cancel_url="https://shop.example.com/cart"
    )
    async with httpx.AsyncClient(base_url=gateway_url, timeout=10) as browser:
        reply = await browser.get(
            "/v1/payments/return",
            params={
                "payment_intent": _pi(event),
                "redirect_status": "succeeded",
                "success_url": "https://evil.example.net/",
                "return_url": "https://evil.example.net/",
                "redirect": "//evil.example.net",
            },
        )
    assert reply.status_code == 303
    assert reply.headers["location"] == "https://shop.example.com/paid"


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ({"payment_intent": "pi_NoSuchIntent0123456789", "redirect_status": "succeeded"}, 404),
        ({"payment_intent": "../../admin", "redirect_status": "succeeded"}, 400),
        ({"payment_intent": "pi_<script>", "redirect_status": "failed"}, 400),
        ({}, 400),
    ],
    ids=["unknown", "path", "markup", "missing"],
)
async def test_an_unknown_or_malformed_payment_intent_gets_an_html_page(gateway_url, query, status):
    async with httpx.AsyncClient(base_url=gateway_url, timeout=10) as browser:
        reply = await browser.get("/v1/payments/return", params=query)
    assert reply.status_code == status
    assert reply.headers["content-type"].startswith(HTML)
    assert "<h1" in reply.text and "Traceback" not in reply.text and "<script>" not in reply.text
    assert "location" not in reply.headers


async def test_the_client_secret_in_the_return_url_is_not_logged(http, gateway_url, capsys):
    event = await _three_d_secure(
        http, success_url="https://shop.example.com/paid", cancel_url="https://shop.example.com/cart"
    )
    back = await _authenticate(event["payment_orders"][0]["next_action_url"], "complete")
    secret = parse_qs(urlsplit(back).query)["payment_intent_client_secret"][0]
    assert "_secret_" in secret
    unknown = back.replace(_pi(event), "pi_Unknown0123456789abcdef")
    configure_logging("gateway-test", "INFO", "json")
    try:
        async with httpx.AsyncClient(timeout=10) as browser:
            replies = [await browser.get(back), await browser.get(unknown)]
        out = capsys.readouterr().err
    finally:
        with capsys.disabled():
            configure_test_logging()
    assert [r.status_code for r in replies] == [303, 404]
    assert '"path": "/v1/payments/return"' in out  # the access log did record both requests
    secret_part = secret.split("_secret_", 1)[1]
    assert secret_part not in out
    for reply in replies:
        assert secret_part not in reply.text and secret_part not in reply.headers.get("location", "")


async def test_the_status_page_needs_its_signed_token(http, gateway_url):
    event = await _create(http, _body("5.00", payment_method="pm_card_visa"))
    link = event["status_page_url"]
    parts = urlsplit(link)
    token = parse_qs(parts.query)["token"][0]
    assert parts.path == f"/v1/checkouts/{event['checkout_id']}/status" and len(token) >= 43
    other = await _create(http, _body("6.00", payment_method="pm_card_visa"))
    async with httpx.AsyncClient(base_url=gateway_url, timeout=10) as browser:
        good = await browser.get(link)
        unknown = await browser.get("/v1/checkouts/chk_bp_never/status", params={"token": token})
        refused = [
            await browser.get(parts.path),
            await browser.get(parts.path, params={"token": token[:-1] + ("A" if token[-1] != "A" else "B")}),
            # another checkout's valid token opens only that checkout
            await browser.get(parts.path, params={"token": parse_qs(urlsplit(other["status_page_url"]).query)["token"][0]}),
        ]  # fmt: skip
    assert good.status_code == 200 and good.headers["content-type"].startswith(HTML)
    assert event["payment_orders"][0]["payment_order_id"] in good.text
    for reply in refused:
        # Exactly what an unknown checkout answers: a wrong token tells nothing about the checkout.
        assert (reply.status_code, reply.text) == (unknown.status_code, unknown.text) == (404, unknown.text)
        assert event["payment_orders"][0]["payment_order_id"] not in reply.text
    assert good.headers["cache-control"] == "no-store"


@pytest.mark.parametrize(
    ("currency", "amounts", "shown", "total"),
    [("JPY", ["1500", "20"], ["1500 JPY", "20 JPY"], "1520 JPY"),
     ("BHD", ["1.010", "2.500"], ["1.010 BHD", "2.500 BHD"], "3.510 BHD")],
    ids=["JPY", "BHD"],
)  # fmt: skip
async def test_the_status_page_formats_amounts_in_the_currencys_exponent(
    http, currency, amounts, shown, total
):
    event = await _create(http, _body(*amounts, currency=currency, payment_method="pm_card_visa"))
    async with httpx.AsyncClient(timeout=10) as browser:
        page = (await browser.get(event["status_page_url"])).text
    for amount in shown:
        assert f'<span class="amount">{amount}</span>' in page
    assert f'<span id="total">{total}</span>' in page


async def test_the_status_page_reloads_while_an_order_is_pending_and_shows_no_buyer_details(http):
    body = _body("8.00", payment_method="pm_card_authenticationRequired")
    body["buyer_info"].update(email="grace@example.com", name="Grace Hopper", country="US")
    event = await _create(http, body)
    async with httpx.AsyncClient(timeout=10) as browser:
        page = (await browser.get(event["status_page_url"])).text
    assert 'http-equiv="refresh"' in page and 'data-state="pending"' in page
    for detail in ("grace@example.com", "Grace Hopper", body["buyer_info"]["buyer_id"]):
        assert detail not in page


async def test_a_hosted_checkout_without_urls_sends_the_buyer_to_the_status_page(http):
    event = await _create(http, _body("12.00"))
    assert event["mode"] == "hosted" and event["status_page_url"]
    async with httpx.AsyncClient(timeout=10) as buyer:
        page = await buyer.get(event["hosted_page_url"])
        cancelled = await buyer.post(event["hosted_page_url"], data={"action": "cancel"})
    assert page.status_code == 200
    assert cancelled.status_code == 303 and cancelled.headers["location"] == event["status_page_url"]


async def test_line_items_reach_the_hosted_page_and_come_back_from_the_api(http):
    body = _body("25.00", "9.90")
    body["payment_orders"][0]["line_items"] = [
        {"name": "Desk lamp", "quantity": 1},
        {"name": "Bulb", "quantity": 3},
    ]
    body["payment_orders"][1]["line_items"] = [{"name": "Notebook <A5>"}]  # quantity defaults to 1
    event = await _create(http, body)
    got = (await http.get(f"/v1/checkouts/{body['checkout_id']}")).json()
    assert [o["line_items"] for o in got["payment_orders"]] == [
        [{"name": "Desk lamp", "quantity": 1}, {"name": "Bulb", "quantity": 3}],
        [{"name": "Notebook <A5>", "quantity": 1}],
    ]  # fmt: skip
    async with httpx.AsyncClient(timeout=10) as buyer:
        page = (await buyer.get(event["hosted_page_url"])).text
    assert "Desk lamp, 3 \u00d7 Bulb" in page and "Notebook &lt;A5&gt;" in page
    assert body["payment_orders"][0]["payment_order_id"] not in page  # what was bought, not our ids


async def test_the_email_typed_on_the_hosted_page_becomes_the_buyers_email(http):
    body = _body(
        "14.00", success_url="https://shop.example.com/paid", cancel_url="https://shop.example.com/cart"
    )
    body["buyer_info"]["email"] = "old@example.com"
    event = await _create(http, body)
    async with httpx.AsyncClient(timeout=10) as buyer:
        paid = await buyer.post(
            event["hosted_page_url"],
            data={"email": "typed.by.buyer@example.org", "cardnumber": "4242424242424242", "exp": "12/34",
                  "cvc": "123", "action": "pay"},
        )  # fmt: skip
    assert paid.status_code == 303

    async def updated() -> dict[str, Any] | None:
        got = (await http.get(f"/v1/checkouts/{body['checkout_id']}")).json()
        done = got["payment_orders"][0]["state"] == "success"
        return got if done and got["buyer_info"]["email"] == "typed.by.buyer@example.org" else None

    await _until(updated, "the typed e-mail to reach buyer_info.email")
