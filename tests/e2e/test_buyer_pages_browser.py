"""The buyer's way through pay-in in headless Chromium: 3-D Secure on the simulator's challenge page back
to the shop or to our status page, the status page itself, and the hosted page's layout at phone and
desktop widths.

The gateway runs on this test's event loop, so every blocking Selenium step runs in a thread."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

pytestmark = pytest.mark.browser

PHONE, DESKTOP = 375, 1280


def _body(sim_url: str | None, *amounts: str, **extra: Any) -> dict[str, Any]:
    run = uuid.uuid4().hex[:10]
    body: dict[str, Any] = {
        "checkout_id": f"chk_br_{run}",
        "buyer_info": {"buyer_id": f"buyer_br_{run}"},
        "payment_orders": [
            {
                "payment_order_id": f"po_br_{run}_{i}",
                "seller_account": f"seller_br_{i}",
                "amount": amount,
                "currency": "EUR",
            }
            for i, amount in enumerate(amounts)
        ],
    }
    if sim_url:
        body["success_url"] = f"{sim_url}/_sim/landing?result=paid"
        body["cancel_url"] = f"{sim_url}/_sim/landing?result=cancel"
    body.update(extra)
    return body


async def _create(http: httpx.AsyncClient, body: dict[str, Any]) -> dict[str, Any]:
    reply = await http.post("/v1/payments", json=body, headers={"Idempotency-Key": uuid.uuid4().hex})
    assert reply.status_code == 201, reply.text
    return reply.json()


def _authenticate_in_browser(browser: Any, challenge_url: str, button: str, lands_at: str) -> str:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(challenge_url)
    browser.find_element(By.ID, button).click()
    WebDriverWait(browser, 15).until(lambda d: lands_at in d.current_url)
    return browser.current_url


@pytest.mark.parametrize(("button", "result"), [("complete", "paid"), ("fail", "cancel")])
async def test_3ds_in_the_browser_returns_the_buyer_to_the_shop(http, browser, shared_psp, button, result):
    event = await _create(
        http, _body(shared_psp.base_url, "42.00", payment_method="pm_card_authenticationRequired")
    )
    order = event["payment_orders"][0]
    assert order["state"] == "pending"
    landed = await asyncio.to_thread(
        _authenticate_in_browser, browser, order["next_action_url"], button, "/_sim/landing"
    )
    assert parse_qs(urlsplit(landed).query) == {"result": [result]}  # the shop's URL, exactly as stored


async def test_3ds_in_the_browser_without_urls_lands_on_the_status_page(http, browser, gateway_url):
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    body = _body(None, "42.00", payment_method="pm_card_authenticationRequired")
    body["payment_orders"][0]["line_items"] = [{"name": "Reading lamp", "quantity": 2}]
    event = await _create(http, body)

    def pay_and_watch() -> tuple[str, str, str]:
        landed = _authenticate_in_browser(
            browser, event["payment_orders"][0]["next_action_url"], "complete", "/status"
        )
        # The page reloads itself until the PSP's webhook has moved the order: an element found just
        # before a reload is gone when it is read (a CI run on a busy machine met that), so look again.
        WebDriverWait(browser, 20, ignored_exceptions=(StaleElementReferenceException,)).until(
            lambda d: d.find_element(By.ID, "order-0").get_attribute("data-state") == "success"
        )
        return (
            landed,
            browser.find_element(By.ID, "headline").text,
            browser.find_element(By.ID, "order-0").text,
        )

    landed, headline, order_text = await asyncio.to_thread(pay_and_watch)
    assert landed == event["status_page_url"] and landed.startswith(gateway_url)
    assert headline == "Thank you, your payment is complete"
    assert "2 \u00d7 Reading lamp" in order_text and "Paid" in order_text and "42.00 EUR" in order_text


async def test_the_status_page_renders_every_order_and_its_state(http, browser):
    from selenium.webdriver.common.by import By

    body = _body(None, "25.00", "9.90")
    body["payment_orders"][0]["line_items"] = [{"name": "Desk lamp"}, {"name": "Bulb", "quantity": 3}]
    event = await _create(http, body)

    def read() -> tuple[str, list[str], str]:
        browser.get(event["status_page_url"])
        orders = browser.find_elements(By.CSS_SELECTOR, "section.order")
        return browser.find_element(By.ID, "headline").text, [o.text for o in orders], browser.page_source

    headline, orders, source = await asyncio.to_thread(read)
    assert headline == "Your payment is being processed"
    assert len(orders) == 2
    assert "Desk lamp" in orders[0] and "3 \u00d7 Bulb" in orders[0] and "25.00 EUR" in orders[0]
    assert body["payment_orders"][1]["payment_order_id"] in orders[1] and "9.90 EUR" in orders[1]
    assert all("Waiting for payment" in o for o in orders)
    assert 'http-equiv="refresh"' in source


_OVERFLOW_JS = """
const card = document.querySelector(arguments[0]);
const box = card.getBoundingClientRect();
const out = [];
for (const el of card.querySelectorAll('*')) {
  const r = el.getBoundingClientRect();
  if (r.width === 0 && r.height === 0) continue;
  if (r.left < box.left - 0.5 || r.right > box.right + 0.5) out.push('outside card: ' + el.outerHTML.slice(0, 80));
  if (el.scrollWidth > el.clientWidth + 1 && el.clientWidth > 0 && getComputedStyle(el).display !== 'inline')
    out.push('overflows itself: ' + el.outerHTML.slice(0, 80));
}
if (box.left < 0 || box.right > window.innerWidth) out.push('card outside viewport');
if (document.documentElement.scrollWidth > window.innerWidth) out.push('page scrolls sideways');
return out;
"""


def _layout_problems(browser: Any, url: str, card: str, width: int, shot: Path) -> list[str]:
    browser.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": 900, "deviceScaleFactor": 1, "mobile": width < 500},
    )
    try:
        browser.get(url)
        browser.save_screenshot(str(shot))
        return browser.execute_script(_OVERFLOW_JS, card)
    finally:
        browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


async def test_the_hosted_page_fits_a_phone_and_a_desktop(http, browser, shared_psp, tmp_path):
    long_word = "Ultrawide" * 11  # 99 characters without a space to break at
    body = _body(shared_psp.base_url, "1234.56", "9.90", "0.50")
    for i, order in enumerate(body["payment_orders"]):
        order["payment_order_id"] = f"po_{uuid.uuid4().hex}_" + "x" * 90 + str(i)  # 128 characters
        order["seller_account"] = "seller_" + "s" * 100 + str(i)
    body["payment_orders"][0]["line_items"] = [
        {"name": long_word, "quantity": 2},
        {"name": "A very long product title that goes on and on to test wrapping in the card", "quantity": 1},
    ]
    body["payment_orders"][1]["line_items"] = [{"name": "Bulb", "quantity": 9999}]
    event = await _create(http, body)
    for width in (PHONE, DESKTOP):
        shot = tmp_path / f"hosted-{width}.png"
        problems = await asyncio.to_thread(
            _layout_problems, browser, event["hosted_page_url"], ".box", width, shot
        )
        assert problems == [], (width, problems)
        assert shot.stat().st_size > 1000
    async with httpx.AsyncClient(timeout=10) as buyer:
        page = (await buyer.get(event["hosted_page_url"])).text
    assert long_word in page and "9999 \u00d7 Bulb" in page


async def test_the_status_page_fits_a_phone_and_a_desktop(http, browser, tmp_path):
    body = _body(None, "1234.56", "0.50")
    body["payment_orders"][0]["payment_order_id"] = f"po_{uuid.uuid4().hex}_" + "y" * 92  # 128 characters
    body["payment_orders"][0]["line_items"] = [{"name": "Z" * 100, "quantity": 3}]
    event = await _create(http, body)
    for width in (PHONE, DESKTOP):
        shot = tmp_path / f"status-{width}.png"
        problems = await asyncio.to_thread(
            _layout_problems, browser, event["status_page_url"], ".card", width, shot
        )
        assert problems == [], (width, problems)
