"""The hosted payment page in headless Chromium (Debian's chromium + chromium-driver via Selenium)."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

from psp_sim.testing import SimServer

pytestmark = pytest.mark.browser


def _session(sim: SimServer, client: Any) -> Any:
    landing = f"{sim.base_url}/_sim/landing"
    return client.v1.checkout.sessions.create(
        params={
            "mode": "payment",
            "success_url": landing + "?result=success&session_id={CHECKOUT_SESSION_ID}",
            "cancel_url": landing + "?result=cancel&session_id={CHECKOUT_SESSION_ID}",
            "line_items": [
                {
                    "price_data": {"currency": "usd", "unit_amount": 4200, "product_data": {"name": "Lamp"}},
                    "quantity": 1,
                }
            ],
        }
    )


def _fill(browser: Any, number: str, exp: str = "12/34", cvc: str = "123") -> None:
    from selenium.webdriver.common.by import By

    for field_id, value in (("cardnumber", number), ("exp", exp), ("cvc", cvc), ("name", "Ada Lovelace")):
        el = browser.find_element(By.ID, field_id)
        el.clear()
        el.send_keys(value)
    browser.find_element(By.ID, "submit").click()


def _wait_url(browser: Any, fragment: str) -> str:
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(browser, 10).until(lambda d: fragment in d.current_url)
    return browser.current_url


def _query(browser: Any) -> dict[str, str]:
    url = _wait_url(browser, "/_sim/landing")
    return {k: v[0] for k, v in parse_qs(urlparse(url).query).items()}


def test_pay_with_a_card_in_the_browser(sim: SimServer, client: Any, browser: Any) -> None:
    cs = _session(sim, client)
    browser.get(cs.url)
    assert "Pay 42.00 USD" in browser.page_source
    _fill(browser, "4242 4242 4242 4242")
    assert _query(browser) == {"result": "success", "session_id": cs.id}
    assert client.v1.checkout.sessions.retrieve(cs.id).payment_status == "paid"


def test_decline_then_success_in_the_browser(sim: SimServer, client: Any, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    cs = _session(sim, client)
    browser.get(cs.url)
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    _fill(browser, "4000000000000002")
    error = WebDriverWait(browser, 10).until(ec.presence_of_element_located((By.ID, "error")))
    assert "declined" in error.text
    _fill(browser, "5555555555554444")
    assert _query(browser)["result"] == "success"


def test_3ds_challenge_in_the_browser(sim: SimServer, client: Any, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    cs = _session(sim, client)
    browser.get(cs.url)
    _fill(browser, "4000002760003184")
    _wait_url(browser, "/3ds/")
    browser.find_element(By.ID, "complete").click()
    assert _query(browser) == {"result": "success", "session_id": cs.id}
    assert client.v1.checkout.sessions.retrieve(cs.id).status == "complete"


def test_cancel_in_the_browser(sim: SimServer, client: Any, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    cs = _session(sim, client)
    browser.get(cs.url)
    browser.find_element(By.ID, "cancel").click()
    assert _query(browser) == {"result": "cancel", "session_id": cs.id}
