"""The pay-out journey in headless Chromium: sign in, find a seller, preview the period's run for it,
confirm and start the run, watch the run page (which reloads itself while running) until it completes,
open the pay-out, then verify the ledger from the Books page. Screenshots of each page at phone and
desktop widths are kept in the test's tmp dir (docs/console.md shows some)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from selenium.common.exceptions import WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.wait import WebDriverWait

from tests.console.sellers_helpers import fund, registered_seller
from tests.console.test_console_browser import _shoot, _submit


def _journey(browser: Any, base: str, key: str, seller: str, shots: Path) -> dict[str, Any]:
    seen: dict[str, Any] = {"sideways": []}
    browser.delete_all_cookies()
    try:
        browser.get(base + "/console/sign-in")
        browser.find_element(By.ID, "api_key").send_keys(key)
        _submit(browser, By.CSS_SELECTOR, "form button[type=submit]")

        _submit(browser, By.LINK_TEXT, "Sellers")
        browser.find_element(By.ID, "seller").send_keys(seller)
        _submit(browser, By.CSS_SELECTOR, "form[role=search] button")
        seen["sideways"] += _shoot(browser, shots, "sellers")
        _submit(browser, By.LINK_TEXT, seller)
        seen["seller_text"] = browser.find_element(By.TAG_NAME, "main").text
        seen["sideways"] += _shoot(browser, shots, "seller")

        _submit(browser, By.LINK_TEXT, "Pay-out runs")
        period = browser.find_element(By.ID, "period")
        period.clear()
        period.send_keys("2026-11")
        browser.find_element(By.ID, "sellers").send_keys(seller)
        _submit(browser, By.XPATH, "//button[.='Preview']")
        seen["preview_title"] = browser.find_element(By.CSS_SELECTOR, "section.scroll h2").text
        seen["sideways"] += _shoot(browser, shots, "payout-preview")
        browser.find_element(By.ID, "run_note").send_keys("November pay-outs")
        _submit(browser, By.XPATH, "//button[contains(., 'Review run')]")
        seen["confirm_title"] = browser.find_element(By.TAG_NAME, "h1").text
        seen["sideways"] += _shoot(browser, shots, "payout-confirm")
        _submit(browser, By.XPATH, "//button[contains(., 'Start the run')]")
        # The run page reloads itself (Refresh header) until the run has completed.
        WebDriverWait(browser, 20, poll_frequency=0.1, ignored_exceptions=(WebDriverException,)).until(
            lambda b: "completed" in b.find_element(By.TAG_NAME, "h1").text
        )
        seen["run_text"] = browser.find_element(By.TAG_NAME, "main").text
        seen["sideways"] += _shoot(browser, shots, "payout-run")
        _submit(browser, By.PARTIAL_LINK_TEXT, "pyo_")
        seen["payout_text"] = browser.find_element(By.TAG_NAME, "main").text
        seen["sideways"] += _shoot(browser, shots, "payout")

        _submit(browser, By.LINK_TEXT, "Books")
        seen["sideways"] += _shoot(browser, shots, "books")
        _submit(browser, By.XPATH, "//button[.='Verify the ledger']")
        seen["verify_text"] = browser.find_element(By.TAG_NAME, "main").text
        seen["sideways"] += _shoot(browser, shots, "books-verify")
    finally:
        browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    return seen


async def test_an_operator_previews_and_runs_a_payout_and_watches_it_finish(
    gw, keys, client, admin_key, shared_psp, browser, tmp_path
):
    _, key = await keys.make("admin")
    async with gw.client(admin_key) as admin_api:
        seller = await registered_seller(admin_api, shared_psp, "s-web")
        await fund(client, admin_api, seller, "30.00")
        available = (await admin_api.get(f"/v1/sellers/{seller}/wallet", params={"currency": "USD"})).json()[
            "available"
        ]
        seen = await asyncio.to_thread(_journey, browser, gw.url, key, seller, tmp_path)
        payouts = (await admin_api.get("/v1/admin/payouts", params={"seller_account": seller})).json()[
            "payouts"
        ]

    assert f"{available} USD" in seen["seller_text"] and "Pause pay-outs" in seen["seller_text"]
    assert seen["preview_title"] == f"Preview of 2026-11: {available} USD"
    assert seen["confirm_title"] == f"Pay {available} USD for 2026-11?"
    assert "1 of 1 sellers done: 1 pay-outs created" in seen["run_text"]
    assert len(payouts) == 1 and payouts[0]["payout_id"] in seen["payout_text"]
    assert f"{available} USD" in seen["payout_text"]
    assert "transactions and" in seen["verify_text"]
    assert seen["sideways"] == []
    assert len(list(tmp_path.glob("*.png"))) == 16
