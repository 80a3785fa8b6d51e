"""/docs and /redoc render in headless Chromium from the gateway's own files, with nothing from a CDN."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlparse

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

pytestmark = pytest.mark.browser


def _render(browser: Any, url: str, selector: str) -> tuple[int, list[str]]:
    """Load the page, wait for the rendered elements, and list every script and stylesheet it used."""
    browser.get(url)
    WebDriverWait(browser, 20).until(lambda d: d.find_elements(By.CSS_SELECTOR, selector))
    rendered = len(browser.find_elements(By.CSS_SELECTOR, selector))
    sources = browser.execute_script(
        "return Array.from(document.querySelectorAll('script[src], link[rel=stylesheet]'))"
        ".map(e => e.src || e.href)"
    )
    return rendered, sources


@pytest.mark.parametrize(
    ("path", "selector"),
    [
        ("/docs", ".opblock"),  # Swagger UI drew one block per operation
        ("/redoc", "[data-section-id^='tag/']"),  # ReDoc drew the tagged sections
    ],
)
async def test_the_interactive_docs_render_from_the_gateway_itself(gateway_url, browser, path, selector):
    rendered, sources = await asyncio.to_thread(_render, browser, gateway_url + path, selector)
    assert rendered > 0
    gateway_host = urlparse(gateway_url).netloc
    assert sources, "the page loaded no script"
    assert all(urlparse(src).netloc == gateway_host for src in sources), sources
