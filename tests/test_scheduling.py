"""The parallel run's grouping lists (tests/conftest.py) name the modules they must: a module with several
browser tests that is not listed would start a Chromium on every worker that gets one of its tests."""

from __future__ import annotations

from collections import Counter

import pytest

from tests.conftest import BROWSER_MODULES


def test_every_module_with_several_browser_tests_goes_to_one_worker(request: pytest.FixtureRequest) -> None:
    items = request.session.items
    browser_tests = Counter(
        item.nodeid.split("::", 1)[0]
        for item in items
        if isinstance(item, pytest.Function) and "browser" in item.fixturenames
    )
    collected = {item.nodeid.split("::", 1)[0] for item in items}
    several = {module for module, count in browser_tests.items() if count > 1}
    listed = {prefix.removesuffix("::") for prefix in BROWSER_MODULES}
    assert several <= listed, f"add to BROWSER_MODULES in tests/conftest.py: {sorted(several - listed)}"
    # A listed module that was collected in this run still has several browser tests (no stale entry).
    assert {m for m in listed if m in collected} <= several
