"""A test that hangs leaves a record of where it is stuck before its timeout ends the worker."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest


def test_a_hung_asyncio_test_leaves_its_threads_and_tasks_in_a_file(pytester: pytest.Pytester, monkeypatch):
    hangs = pytester.path / "hangs"
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).resolve().parents[1]))
    monkeypatch.setenv("PYTEST_HANGS_DIR", str(hangs))
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    pytester.makeconftest('pytest_plugins = ["tests.watchdog"]\n')
    pytester.makeini(
        "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = session\n"
        "asyncio_default_test_loop_scope = session\ntimeout = 3\ntimeout_method = thread\n"
    )
    pytester.makepyfile(
        """
import asyncio

import pytest

@pytest.fixture(scope="session")
def shared_server():
    yield "up"

async def waits_for_a_reply_that_never_comes():
    await asyncio.Event().wait()

async def test_hangs(shared_server):
    await asyncio.gather(waits_for_a_reply_that_never_comes())
"""
    )
    try:
        result = pytester.runpytest_subprocess(
            "-p", "no:cacheprovider", "-p", "pytest_asyncio.plugin", "-p", "pytest_timeout", timeout=60
        )
        assert result.ret != 0  # pytest-timeout ended it
        [dump] = list(hangs.iterdir())
        text = dump.read_text()
        assert "test_hangs" in text and "still running" in text
        assert "Current thread" in text or "Thread 0x" in text  # faulthandler's thread stacks
        assert "waits_for_a_reply_that_never_comes" in text  # the suspended task and where it waits
        assert "shared_server (session)" in text  # what a hung teardown would be finalizing
    finally:
        shutil.rmtree(pytester.path, ignore_errors=True)
