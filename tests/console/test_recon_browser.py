"""The reconciliation, events and overview screens in headless Chromium: an operator opens the overview,
opens a reconciliation run, follows it to a mismatch and resolves it with a reason, then replays a dead
letter. Screenshots of each page at phone and desktop widths go to the test's tmp dir (the ones in
docs/console/ come from it); no page may scroll sideways."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from redis.asyncio import Redis
from selenium.webdriver.common.by import By
from selenium.webdriver.support.select import Select

from svckit.events.config import Keys
from tests.console.conftest import paid_order
from tests.console.test_console_browser import _shoot, _submit
from tests.console.test_events_console import dead_letter
from tests.console.test_overview_console import declined_order
from tests.console.test_recon_console import seeded_run


def _journey(
    browser: Any, base: str, key: str, run_id: str, mismatch_id: str, letter: str, shots: Path
) -> dict:
    seen: dict[str, Any] = {"sideways": []}
    browser.delete_all_cookies()
    try:
        browser.get(base + "/console/sign-in")
        browser.find_element(By.ID, "api_key").send_keys(key)
        _submit(browser, By.CSS_SELECTOR, "form button[type=submit]")

        _submit(browser, By.LINK_TEXT, "Overview")
        seen["overview"] = browser.find_element(By.TAG_NAME, "main").text
        seen["sideways"] += _shoot(browser, shots, "overview")

        _submit(browser, By.LINK_TEXT, "Reconciliation")
        _submit(browser, By.LINK_TEXT, run_id)
        seen["run"] = browser.find_element(By.TAG_NAME, "main").text
        seen["sideways"] += _shoot(browser, shots, "recon-run")
        _submit(browser, By.LINK_TEXT, "This run's open mismatches")
        _submit(browser, By.LINK_TEXT, mismatch_id)
        seen["sideways"] += _shoot(browser, shots, "recon-mismatch")
        Select(browser.find_element(By.ID, "resolution_code")).select_by_value("written_off")
        browser.find_element(By.ID, "resolve_note").send_keys("a PSP test charge, nothing of ours")
        _submit(browser, By.XPATH, "//button[.='Resolve']")
        seen["resolved"] = browser.find_element(By.CSS_SELECTOR, ".notice").text
        seen["history"] = browser.find_element(By.TAG_NAME, "main").text

        _submit(browser, By.LINK_TEXT, "Events")
        seen["events"] = browser.find_element(By.TAG_NAME, "h1").text
        browser.get(f"{base}/console/events/dead-letters/{letter}")
        seen["sideways"] += _shoot(browser, shots, "dead-letter")
        browser.find_element(By.ID, "replay_note").send_keys("ledger fixed, replaying")
        _submit(browser, By.XPATH, "//button[.='Replay']")
        seen["replayed"] = browser.find_element(By.CSS_SELECTOR, ".notice").text
    finally:
        browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    return seen


async def test_an_operator_resolves_a_mismatch_and_replays_a_dead_letter(
    gw, keys, client, operator_channels, services, browser, tmp_path
):
    _, key = await keys.make("admin")
    await paid_order(client)  # something to draw in the overview's chart
    await declined_order(client)
    run_id, [mismatch_id] = await seeded_run(operator_channels, 1)
    settings = services["payment"].settings
    redis = Redis.from_url(settings.redis_url, decode_responses=True)
    try:
        letter = await dead_letter((redis, Keys(settings.events_namespace)))
    finally:
        await redis.aclose()
    seen = await asyncio.to_thread(_journey, browser, gw.url, key, run_id, mismatch_id, letter, tmp_path)

    assert "Settlement lag" in seen["overview"] and "insufficient_funds" in seen["overview"]
    assert "USD:charge" in seen["run"] and "UNMATCHED_ROW: 1" in seen["run"]
    assert seen["resolved"] == "Resolved."
    assert (
        "resolved:written_off" in seen["history"] and "a PSP test charge, nothing of ours" in seen["history"]
    )
    assert seen["replayed"].startswith("Dead letter replayed")
    assert seen["sideways"] == []
    assert seen["events"] == "Events"
    assert len(list(tmp_path.glob("*.png"))) == 8
