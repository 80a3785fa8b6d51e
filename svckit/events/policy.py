"""What to do with a failed delivery: a pure function of (attempt, error) → retry later or dead-letter.

    classify(error)   → TRANSIENT (a retry may succeed) or TERMINAL (it cannot)
    RetryPolicy.decide(attempt, error, rand) → Retry(delay_seconds) | DeadLetter(reason)

Transient: :class:`TransientError`, ``Unavailable``/``Aborted`` domain errors, connection and timeout
errors, PostgreSQL serialization failures, deadlocks and lost connections, and any unexpected exception (a bug may be
fixed and the message replayed, but it must not loop forever: it is dead-lettered after
``max_attempts``). Terminal: :class:`TerminalError` and the domain errors that say the request itself
is wrong (``InvalidArgument``, ``FailedPrecondition``, ``NotFound``, ``AlreadyExists``,
``Unprocessable``), PostgreSQL data and integrity errors, and ``ValueError``/``LookupError`` (a
payload the handler cannot read): retrying an unchanged message cannot help, so it goes to the dead letters at once.

Delays use exponential backoff with *full jitter*: ``uniform(0, min(cap, base * 2**(attempt-1)))``,
which spreads a burst of failures (a dependency outage) instead of retrying it in lockstep.
"""

from __future__ import annotations

import asyncio
import enum
import random
from collections.abc import Callable
from dataclasses import dataclass

from svckit.errors import DomainError, ErrorKind


class TransientError(Exception):
    """Raise from a handler when the failure is temporary: the event is retried with backoff."""


class Waiting(TransientError):
    """Raise from a handler when the event must wait for another one to be applied first (a refund's
    debit for its order's credit, which is itself being retried). Waiting is not failing: it is
    retried without spending an attempt for up to ``max_wait_seconds`` after the event occurred, so
    it outlasts the attempts of what it waits for; after that it counts as a transient failure."""


class TerminalError(Exception):
    """Raise from a handler when the event can never be processed: it is dead-lettered at once."""


class ErrorClass(enum.Enum):
    TRANSIENT = "transient"
    TERMINAL = "terminal"


_TRANSIENT_KINDS = frozenset({ErrorKind.UNAVAILABLE, ErrorKind.ABORTED, ErrorKind.INTERNAL})
# PostgreSQL SQLSTATEs worth retrying: serialization_failure, deadlock_detected, lock_not_available,
# and the connection exception class (08xxx).
_TRANSIENT_SQLSTATES = ("40001", "40P01", "55P03", "08")
# Data exceptions (22xxx) and integrity violations (23xxx): the event's data is wrong for this
# database, and will be on the next attempt too.
_TERMINAL_SQLSTATES = ("22", "23")


def _sqlstate(error: BaseException) -> str | None:
    orig = getattr(error, "orig", None) or error
    return getattr(orig, "sqlstate", None)


def classify(error: BaseException) -> ErrorClass:
    """Transient unless the error says that retrying the unchanged event cannot succeed."""
    if isinstance(error, TerminalError):
        return ErrorClass.TERMINAL
    if isinstance(error, TransientError):
        return ErrorClass.TRANSIENT
    if isinstance(error, DomainError):
        return ErrorClass.TRANSIENT if error.kind in _TRANSIENT_KINDS else ErrorClass.TERMINAL
    if isinstance(error, ConnectionError | TimeoutError | asyncio.TimeoutError | OSError):
        return ErrorClass.TRANSIENT
    state = _sqlstate(error)
    if state and state.startswith(_TRANSIENT_SQLSTATES):
        return ErrorClass.TRANSIENT
    if state and state.startswith(_TERMINAL_SQLSTATES):
        return ErrorClass.TERMINAL
    if isinstance(error, ValueError | TypeError | KeyError | LookupError):
        # A payload the handler cannot parse will not parse next time either.
        return ErrorClass.TERMINAL
    return ErrorClass.TRANSIENT


@dataclass(frozen=True)
class Retry:
    delay_seconds: float
    spends_attempt: bool = True
    """False for an event that waits (:class:`Waiting`): its copy keeps its attempt number."""


@dataclass(frozen=True)
class DeadLetter:
    reason: str
    """``terminal`` or ``attempts_exhausted`` (the consumer adds ``max_deliveries`` for crash loops)."""


Decision = Retry | DeadLetter


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 8
    base_delay_seconds: float = 1.0
    max_delay_seconds: float = 300.0
    max_wait_seconds: float = 3600.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if not 0 < self.base_delay_seconds <= self.max_delay_seconds:
            raise ValueError("need 0 < base_delay_seconds <= max_delay_seconds")

    def ceiling(self, attempt: int) -> float:
        """Largest delay after failed attempt number ``attempt`` (1-based)."""
        # Cap the exponent so a huge attempt number cannot overflow the float.
        return min(self.max_delay_seconds, self.base_delay_seconds * 2.0 ** min(attempt - 1, 62))

    def decide(
        self,
        attempt: int,
        error: BaseException,
        rand: Callable[[], float] = random.random,
        waited_seconds: float | None = None,
    ) -> Decision:
        """Decide after failed attempt ``attempt``; ``rand`` returns a float in [0, 1).
        ``waited_seconds`` is the age of the event (None: unknown), which bounds a :class:`Waiting`."""
        if classify(error) is ErrorClass.TERMINAL:
            return DeadLetter("terminal")
        if (
            isinstance(error, Waiting)
            and waited_seconds is not None
            and waited_seconds < self.max_wait_seconds
        ):
            # Polled again after at most a quarter of the time waited so far: few polls over a long
            # wait, and an event that waited briefly goes soon after what it waits for has landed.
            ceiling = min(self.max_delay_seconds, max(self.base_delay_seconds, waited_seconds / 4))
            return Retry(rand() * ceiling, spends_attempt=False)
        if attempt >= self.max_attempts:
            return DeadLetter("attempts_exhausted")
        return Retry(rand() * self.ceiling(attempt))
