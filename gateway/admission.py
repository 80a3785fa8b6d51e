"""Admission control: a bound on writes in flight, so overload turns into fast 503s, not timeouts.

Every admitted payment holds database connections and a PSP call for its whole duration; letting an
unbounded queue form behind a saturated payment service only makes every request slow. A request
that cannot be admitted within a short wait is refused with 503 ``OVERLOADED`` and ``Retry-After``;
being a POST with an ``Idempotency-Key``, it can be retried safely.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from gateway import metrics
from gateway.problems import ApiProblem


class Admission:
    def __init__(self, max_inflight: int, wait_seconds: float) -> None:
        self._slots = asyncio.Semaphore(max_inflight)
        self._wait_seconds = wait_seconds

    @contextlib.asynccontextmanager
    async def admit(self) -> AsyncIterator[None]:
        try:
            await asyncio.wait_for(self._slots.acquire(), self._wait_seconds)
        except TimeoutError:
            metrics.OVERLOADED.inc()
            raise ApiProblem(
                503,
                "OVERLOADED",
                "the payment system is at capacity; retry with the same Idempotency-Key",
                headers={"Retry-After": "1"},
            ) from None
        try:
            yield
        finally:
            self._slots.release()
