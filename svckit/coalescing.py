"""Group commit: concurrent calls share one unit of work, and each is answered with its own outcome.

A unit of work (a transaction, one statement) costs mostly per unit, not per item in it. While a
group is in flight (or within a short window) the coalescer collects the calls that arrive, then runs
them together through the service's batch path and answers each caller with its own item's outcome.
The service decides what a group is (``run_group``) and must answer each item exactly as its single
path would; this module owns the queueing rules that make that possible:

- Two calls with the same key never share a group (inside one transaction an advisory lock is
  re-entrant, so both would take effect); the later one waits for the next group, where it replays
  the first. A key already in flight waits the same way.
- ``claims`` name things an item fixes for the whole group (the ledger: an account's currency, since
  an account is created in the currency of the first item naming it): an item whose claim disagrees
  with one already in the group waits for the next group.
- Items are handed to ``run_group`` in arrival order.
- A caller that went away before its group formed is skipped; a group in flight runs it anyway, as a
  statement already sent to the database would.
- When the group's unit of work fails as a whole, it wrote nothing (one transaction), so every call
  gets a retryable refusal: the service's own typed error when it raised one (a deadlock's
  ``TRANSIENT_CONFLICT``), otherwise UNAVAILABLE ``GROUP_TRANSACTION_FAILED``, logged once rather
  than as one traceback per caller.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable, Hashable, Mapping
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from svckit.errors import DomainError, Unavailable
from svckit.logging import get_logger

log = get_logger(__name__)

I = TypeVar("I")  # noqa: E741  (an item, as the service's batch path takes it)
O = TypeVar("O")  # noqa: E741  (its outcome)


def group_failed() -> Unavailable:
    return Unavailable(
        "GROUP_TRANSACTION_FAILED",
        "the transaction this call shared with concurrent calls failed; retry with the same "
        "idempotency-key (it takes effect at most once)",
    )


@dataclass
class _Waiting(Generic[I, O]):
    item: I
    key: Hashable
    claims: Mapping[str, str]
    future: asyncio.Future[O] = field(repr=False)


class Coalescer(Generic[I, O]):
    """Runs concurrent ``submit`` calls in groups through ``run_group`` (items in, outcomes out, same
    order); ``submit`` answers with the call's own outcome or raises the group's failure."""

    def __init__(
        self,
        run_group: Callable[[list[I]], Awaitable[list[O]]],
        *,
        name: str,
        window_seconds: float = 0.0,
        max_group: int = 200,
        max_in_flight: int = 1,
    ) -> None:
        self._run_group = run_group
        self._name = name
        self._window = window_seconds
        self._max_group = max_group
        self._max_in_flight = max_in_flight
        self._queue: deque[_Waiting[I, O]] = deque()
        self._in_flight_keys: set[Hashable] = set()
        self._lanes = 0  # groups being collected or run
        self._collecting = False  # a lane is collecting: new arrivals join it, no new lane is needed
        self._tasks: set[asyncio.Task] = set()

    async def submit(self, item: I, key: Hashable, claims: Mapping[str, str] | None = None) -> O:
        waiting: _Waiting[I, O] = _Waiting(
            item, key, claims or {}, asyncio.get_running_loop().create_future()
        )
        self._queue.append(waiting)
        self._start_lane()
        return await waiting.future

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _start_lane(self) -> None:
        if self._queue and not self._collecting and self._lanes < self._max_in_flight:
            self._lanes += 1
            self._collecting = True
            task = asyncio.get_running_loop().create_task(self._lane())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _lane(self) -> None:
        group: list[_Waiting[I, O]] = []
        collecting = True
        try:
            # Let the calls that are already runnable (and, with a window, those arriving within it)
            # join this group.
            await asyncio.sleep(self._window)
            group = self._take_group()
            self._collecting = collecting = False
            self._start_lane()  # more than one group's worth waiting: use a free lane right away
            if group:
                await self._run(group)
        finally:
            if collecting:  # cancelled while collecting
                self._collecting = False
            self._in_flight_keys.difference_update(w.key for w in group)
            self._lanes -= 1
            # A lane that found nothing to send (only calls held back behind a key in flight) does not
            # restart: the lane running that key restarts when it is done.
            if group:
                self._start_lane()

    def _take_group(self) -> list[_Waiting[I, O]]:
        group: list[_Waiting[I, O]] = []
        keys: set[Hashable] = set()
        claimed: dict[str, str] = {}
        left: deque[_Waiting[I, O]] = deque()
        while self._queue and len(group) < self._max_group:
            w = self._queue.popleft()
            if w.future.done():  # the caller went away before its call was sent
                continue
            if (
                w.key in keys
                or w.key in self._in_flight_keys
                or any(claimed.get(name, value) != value for name, value in w.claims.items())
            ):
                left.append(w)
                continue
            keys.add(w.key)
            claimed.update(w.claims)
            group.append(w)
        left.extend(self._queue)
        self._queue = left
        self._in_flight_keys |= keys
        return group

    async def _run(self, group: list[_Waiting[I, O]]) -> None:
        try:
            outcomes = await self._run_group([w.item for w in group])
        except asyncio.CancelledError:
            for w in group:
                w.future.cancel()
            raise
        except Exception as exc:
            if isinstance(exc, DomainError):
                failure: DomainError = exc
            else:
                log.exception(
                    "a coalesced group's unit of work failed", coalescer=self._name, calls=len(group)
                )
                failure = group_failed()
            for w in group:
                if not w.future.done():
                    w.future.set_exception(failure)
            return
        for w, outcome in zip(group, outcomes, strict=True):
            if not w.future.done():
                w.future.set_result(outcome)
