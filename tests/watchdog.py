"""A record of where a hung test is stuck, written before pytest-timeout ends its worker.

pytest-timeout's thread method prints the threads' stacks and exits the process; in an xdist worker
that print goes nowhere, and a thread stack of an asyncio test only shows the event loop waiting.
This plugin starts a timer per test that fires a little earlier and writes, to a file under
``.pytest-hangs/`` (``.ci/run`` prints them when the run fails):

- every thread's stack (``faulthandler``), which shows a loop blocked by a synchronous call;
- every asyncio task of the session's loop with its stack, which shows what a live loop awaits.

``PYTEST_HANGS_DIR`` puts the files elsewhere.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import faulthandler
import gc
import io
import os
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TextIO

import pytest
import pytest_asyncio

HANGS = Path(os.environ.get("PYTEST_HANGS_DIR") or Path(__file__).resolve().parents[1] / ".pytest-hangs")
_loops: list[asyncio.AbstractEventLoop] = []


def _seconds_before_timeout(config: pytest.Config) -> float | None:
    timeout = float(config.getini("timeout") or 0)
    return max(timeout - 30, timeout * 0.8) if timeout > 0 else None


@pytest_asyncio.fixture(scope="session", autouse=True)
async def _watched_loop() -> AsyncIterator[None]:
    """Remembers the session's event loop, so a dump can list its tasks."""
    _loops.append(asyncio.get_running_loop())
    yield


async def _tasks() -> str:
    """Runs on the loop: each pending task and the stack it is suspended in."""
    out = io.StringIO()
    for task in asyncio.all_tasks():
        out.write(f"\n--- {task!r}\n")
        task.print_stack(limit=30, file=out)
    return out.getvalue()


def _running_loops() -> list[asyncio.AbstractEventLoop]:
    """The session's loop, and any other loop running now (found by the garbage collector)."""
    found = [loop for loop in gc.get_objects() if isinstance(loop, asyncio.AbstractEventLoop)]
    return [loop for loop in dict.fromkeys([*_loops, *found]) if loop.is_running()]


def _dump(nodeid: str, out: TextIO) -> None:
    out.write(f"test {nodeid} still running at {time.strftime('%H:%M:%S')} (pid {os.getpid()})\n")
    # A hang in teardown is in the last of these (fixtures finalize in the reverse of their setup).
    out.write("fixtures set up and not yet finalized: " + ", ".join(_active_fixtures) + "\n\n")
    out.flush()
    faulthandler.dump_traceback(file=out, all_threads=True)
    for loop in _running_loops():
        try:
            answer = asyncio.run_coroutine_threadsafe(_tasks(), loop)
            out.write(f"\nasyncio tasks of {loop!r}:\n" + answer.result(timeout=10))
        except concurrent.futures.TimeoutError:
            out.write("\nthe event loop did not answer within 10 s: it is blocked (see the threads above)\n")
        except Exception as exc:  # the dump must say what it could not do, not die silently
            out.write(f"\ncould not list the tasks of {loop!r}: {exc!r}\n")
        out.flush()


_active_fixtures: list[str] = []


@pytest.hookimpl(hookwrapper=True)
def pytest_fixture_setup(
    fixturedef: pytest.FixtureDef[object], request: pytest.FixtureRequest
) -> Iterator[None]:
    yield
    if fixturedef.scope in ("session", "package", "module"):
        _active_fixtures.append(f"{fixturedef.argname} ({fixturedef.scope})")


def pytest_fixture_post_finalizer(
    fixturedef: pytest.FixtureDef[object], request: pytest.FixtureRequest
) -> None:
    name = f"{fixturedef.argname} ({fixturedef.scope})"
    if name in _active_fixtures:
        _active_fixtures.remove(name)


def _write_dump(nodeid: str) -> None:
    HANGS.mkdir(exist_ok=True)
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    with open(HANGS / f"{worker}-{os.getpid()}.txt", "a", encoding="utf-8") as out:
        _dump(nodeid, out)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    seconds = _seconds_before_timeout(item.config)
    timer = threading.Timer(seconds, _write_dump, args=(item.nodeid,)) if seconds else None
    if timer is not None:
        timer.daemon = True
        timer.start()
    try:
        yield
    finally:
        if timer is not None:
            timer.cancel()
