"""The supervisor's restart policy: when a crashed process is started again (exponential backoff,
reset once it stayed up), and when it is given up on as crash-looping."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Backoff:
    """When to restart a process that crashed, and when to give up on it (it crash-loops)."""

    first_delay: float = 1.0
    max_delay: float = 30.0
    stable_after: float = 60.0
    """Up at least this long before a crash: the next delay is ``first_delay`` again."""
    max_crashes: int = 5
    window: float = 120.0
    """``max_crashes`` crashes within this many seconds: give up."""
    restarts: int = 0
    _streak: int = 0
    _crashes: deque = field(default_factory=deque)

    def crashed(self, now: float, up_for: float) -> float | None:
        """Seconds to wait before the next start, or None when the process crash-loops."""
        if up_for >= self.stable_after:
            self._streak = 0
        self._crashes.append(now)
        while now - self._crashes[0] > self.window:
            self._crashes.popleft()
        if len(self._crashes) >= self.max_crashes:
            return None
        delay = min(self.max_delay, self.first_delay * 2**self._streak)
        self._streak += 1
        self.restarts += 1
        return delay


@dataclass
class Watched:
    """A process the supervisor keeps running: a child, or embedded PostgreSQL/Valkey."""

    name: str
    proc: Callable[[], subprocess.Popen | None]
    start: Callable[[], object]
    """Start it again; for PostgreSQL/Valkey this waits until it is ready (or raises)."""
    tail: Callable[[], None] = lambda: None
    lines: Callable[[], list[str]] = list
    """Its last log lines (a child's), for whoever must say why it stopped."""
    backoff: Backoff = field(default_factory=Backoff)
    started_at: float = field(default_factory=time.monotonic)
    restart_at: float | None = None


@dataclass(frozen=True)
class CrashLoop:
    """A process the supervisor gave up on: it crashed ``crashes`` times within its backoff's window."""

    name: str
    how: str
    """How it ended the last time, e.g. "exited with code 1"."""
    crashes: int
    last_lines: list[str]

    def __str__(self) -> str:
        tail = "\n".join(f"  {self.name} | {line}" for line in self.last_lines[-10:])
        return f"{self.name} crash-looped ({self.how}; {self.crashes} crashes)" + (
            f"; its last log lines:\n{tail}" if tail else ""
        )


def _exit_description(returncode: int) -> str:
    if returncode < 0:
        with contextlib.suppress(ValueError):
            return f"was killed by {signal.Signals(-returncode).name} (exit code {returncode})"
    return f"exited with code {returncode}"
