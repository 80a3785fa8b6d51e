"""Test-only crash points: ``SVCKIT_EVENTS_CRASH_AT=<point>[:<n>]`` makes the process SIGKILL itself
the n-th time (default 1st) it reaches ``<point>``. Used by the crash tests to kill a real relay or
consumer between two steps; unset (always, in production) it costs one dictionary lookup.

Points: ``relay.before_publish``, ``relay.after_publish`` (published, not yet marked sent),
``consumer.before_commit`` (effect applied, not committed), ``consumer.after_commit`` (effect committed, not yet acknowledged).
"""

from __future__ import annotations

import os
import signal

CRASH_ENV = "SVCKIT_EVENTS_CRASH_AT"

_remaining: dict[str, int] = {}
_loaded = False


def _load() -> None:
    global _loaded
    spec = os.environ.get(CRASH_ENV, "")
    if spec:
        point, _, count = spec.partition(":")
        _remaining[point] = int(count or 1)
    _loaded = True


def crashpoint(point: str) -> None:
    if not _loaded:
        _load()
    if point in _remaining:
        _remaining[point] -= 1
        if _remaining[point] <= 0:
            os.kill(os.getpid(), signal.SIGKILL)
