"""The console's main journey in headless Chromium: sign in, find the order a buyer complains about,
refund part of it through the confirmation step, see it in the audit log, sign out. Screenshots of
each page (phone and desktop widths) are kept in the test's tmp dir."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from selenium.common.exceptions import WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.wait import WebDriverWait

from tests.console.conftest import paid_order

PHONE, DESKTOP = 375, 1280
_SIDEWAYS_JS = "return document.documentElement.scrollWidth > window.innerWidth;"


def _width(browser: Any, width: int) -> None:
    browser.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": 900, "deviceScaleFactor": 1, "mobile": width < 500},
    )


def _submit(browser: Any, by: str, what: str) -> None:
    """Click what leads to another page and wait until that page has loaded (a click returns before
    the navigation it starts). The old page is marked; the new one has a fresh window without it."""
    browser.execute_script("window.__leaving = true;")
    browser.find_element(by, what).click()
    WebDriverWait(browser, 20, ignored_exceptions=(WebDriverException,)).until(
        lambda b: b.execute_script("return window.__leaving !== true && document.readyState === 'complete';")
    )


def _shoot(browser: Any, shots: Path, name: str) -> list[str]:
    """Screenshots at both widths; the widths at which the page scrolls sideways."""
    sideways = []
    for width in (PHONE, DESKTOP):
        _width(browser, width)
        browser.save_screenshot(str(shots / f"{name}-{width}.png"))
        if browser.execute_script(_SIDEWAYS_JS):
            sideways.append(f"{name}@{width}")
    return sideways


def _journey(
    browser: Any, base: str, key: str, buyer_id: str, order_id: str, held: str, shots: Path
) -> dict[str, Any]:
    seen: dict[str, Any] = {"sideways": []}
    browser.delete_all_cookies()
    try:
        browser.get(base + "/")
        assert browser.current_url.endswith("/console/sign-in")
        seen["sideways"] += _shoot(browser, shots, "sign-in")
        browser.find_element(By.ID, "api_key").send_keys(key)
        _submit(browser, By.CSS_SELECTOR, "form button[type=submit]")
        assert browser.current_url.endswith("/console/payments"), browser.current_url

        browser.find_element(By.ID, "buyer_id").send_keys(buyer_id)
        _submit(browser, By.CSS_SELECTOR, "form[role=search] button")
        seen["sideways"] += _shoot(browser, shots, "payments")
        _submit(browser, By.LINK_TEXT, order_id)
        seen["sideways"] += _shoot(browser, shots, "order")

        browser.find_element(By.ID, "amount").send_keys("4.50")
        browser.find_element(By.ID, "refund_note").send_keys("buyer says one lamp arrived broken")
        _submit(browser, By.XPATH, "//button[contains(., 'Review refund')]")
        seen["confirm_title"] = browser.find_element(By.TAG_NAME, "h1").text
        seen["sideways"] += _shoot(browser, shots, "refund-confirm")
        _submit(browser, By.XPATH, "//button[contains(., 'Confirm refund')]")
        seen["notice"] = browser.find_element(By.CSS_SELECTOR, ".notice").text
        seen["order_text"] = browser.find_element(By.TAG_NAME, "main").text
        seen["sideways"] += _shoot(browser, shots, "order-refunded")

        # An order held for risk review, approved with a reason.
        browser.get(f"{base}/console/payments/{held}")
        seen["held_text"] = browser.find_element(By.TAG_NAME, "main").text
        browser.find_element(By.ID, "review_note").send_keys("called the buyer: a real order")
        _submit(browser, By.XPATH, "//button[@value='approve']")
        seen["review_notice"] = browser.find_element(By.CSS_SELECTOR, ".notice").text
        seen["sideways"] += _shoot(browser, shots, "order-approved")

        _submit(browser, By.LINK_TEXT, "Audit")
        seen["audit_text"] = browser.find_element(By.TAG_NAME, "main").text
        seen["sideways"] += _shoot(browser, shots, "audit")

        _submit(browser, By.XPATH, "//button[contains(., 'Sign out')]")
        seen["after_sign_out"] = browser.current_url
        browser.get(base + "/console/audit")
        seen["after_sign_out_audit"] = browser.current_url
        seen["cookies"] = {c["name"]: c for c in browser.get_cookies()}
    finally:
        browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    return seen


async def test_an_operator_finds_an_order_refunds_part_of_it_and_signs_out(
    gw, keys, client, browser, tmp_path
):
    _, key = await keys.make("admin")
    order_id = await paid_order(client, amount="30.00", buyer_name="Grace", item="Desk lamp")
    buyer_id = (await client.get(f"/v1/checkouts/{order_id.removesuffix('_0')}")).json()["buyer_info"][
        "buyer_id"
    ]
    held = await paid_order(client, amount="6000.00", buyer_name="Ada")  # over the review threshold
    seen = await asyncio.to_thread(_journey, browser, gw.url, key, buyer_id, order_id, held, tmp_path)

    assert seen["confirm_title"] == "Refund 4.50 USD?"
    assert seen["notice"] == "Refund requested."
    assert "4.50 USD" in seen["order_text"] and "partially_refunded" in seen["order_text"]
    assert (
        "payment.refund" in seen["audit_text"] and "buyer says one lamp arrived broken" in seen["audit_text"]
    )
    assert "Held for risk review" in seen["held_text"]
    assert seen["review_notice"] == "Review decision recorded."
    assert "payment.review.approve" in seen["audit_text"] and "called the buyer" in seen["audit_text"]
    assert seen["after_sign_out"].endswith("/console/sign-in")
    assert seen["after_sign_out_audit"].endswith("/console/sign-in")
    assert "console_session" not in seen["cookies"]
    assert seen["sideways"] == []
    assert (await client.get(f"/v1/payments/{order_id}")).json()["refunded"] == "4.50"
    assert len(list(tmp_path.glob("*.png"))) == 14
