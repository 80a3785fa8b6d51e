"""Group commit for single credits and debits: concurrent ``Credit``/``Debit`` calls share one batch.

A single credit costs a transaction of three statements and a commit, all under the wallet's row lock;
64 clients on one hot wallet therefore queue one transaction at a time (see docs/benchmarks.md).
While a group is being applied, the coalescer collects the calls that arrive, then applies them
together through the batch path (``WalletService.apply_batch`` in one transaction, wallets locked
once each) with each call's own key, and answers each caller exactly as the single path would have.

Why the answers are the same:
- The batch checks each item in the single path's order (stored answer → replay or KEY_REUSED; key
  lock held elsewhere → KEY_IN_USE; validation; funds/limit) and decides items one after the other,
  in arrival order, against the running balance under the wallet's lock, as calls queued on that lock
  would be decided. A refused item writes and stores nothing, like a rolled-back single call.
- Two calls with the same (scope, key) never share a group (inside one transaction the advisory lock
  is re-entrant, so both would apply); the later one waits for the next group, where it replays the
  first or is refused as the single path would refuse it. A key already in flight waits the same way.
- A call that finds no company (a group of one) takes the plain path itself (``alone``): the reference
  behaviour, and cheaper than a batch of one.
- A failure of the whole transaction (lost connection, a bug) is logged once and answers every call
  of the group UNAVAILABLE ``GROUP_TRANSACTION_FAILED``: the group is one transaction, so none of them
  was written (or, if the commit's answer was lost, all were), and a retry with the same key applies
  or replays it. The plain path would answer that one call INTERNAL; this is the one deliberate
  difference, so that one database fault does not become N logged tracebacks.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from svckit.errors import DomainError, Unavailable
from svckit.logging import get_logger
from wallet_svc.service import BatchItem, ItemOutcome, WalletService, apply_batch_unit

log = get_logger(__name__)


def _group_failed() -> Unavailable:
    return Unavailable(
        "GROUP_TRANSACTION_FAILED",
        "the transaction this call shared with concurrent calls failed; retry with the same "
        "idempotency-key (it takes effect at most once)",
    )


@dataclass
class _Waiting:
    item: BatchItem
    alone: Callable[[], Awaitable[ItemOutcome]]
    future: asyncio.Future[ItemOutcome]


class MovementCoalescer:
    """Applies single credits/debits in groups; ``apply`` answers like the single Credit/Debit."""

    def __init__(
        self,
        service: WalletService,
        engine: AsyncEngine,
        *,
        window_seconds: float = 0.0,
        max_group: int = 200,
        max_in_flight: int = 1,
    ) -> None:
        self._service = service
        self._engine = engine
        self._window = window_seconds
        self._max_group = max_group
        self._max_in_flight = max_in_flight
        self._queue: deque[_Waiting] = deque()
        self._in_flight_keys: set[tuple[str, str]] = set()
        self._lanes = 0  # groups being collected or applied
        self._collecting = False  # a lane is collecting: new arrivals join it, no new lane is needed
        self._tasks: set[asyncio.Task] = set()

    async def apply(self, item: BatchItem, alone: Callable[[], Awaitable[ItemOutcome]]) -> ItemOutcome:
        """The new movement or the key's stored answer; raises the refusal (DomainError) otherwise.

        ``alone`` is the call's one-transaction-per-call path, used when the call finds no company:
        it is the reference behaviour, and cheaper than a batch of one (three statements, no lock
        function).
        """
        waiting = _Waiting(item, alone, asyncio.get_running_loop().create_future())
        self._queue.append(waiting)
        self._start_lane()
        # A cancelled caller leaves its future cancelled: a group not yet formed skips it; a group in
        # flight applies it anyway (as a single transaction already sent to the database would).
        outcome = await waiting.future
        if outcome.error is not None:
            raise outcome.error
        return outcome

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
        group: list[_Waiting] = []
        collecting = True
        try:
            # Let the calls that are already runnable (and, with a window, those arriving within it)
            # join this group.
            await asyncio.sleep(self._window)
            group = self._take_group()
            self._collecting = collecting = False
            self._start_lane()  # more than one group's worth waiting: use a free lane right away
            if group:
                await self._apply_group(group)
        finally:
            if collecting:  # cancelled while collecting
                self._collecting = False
            self._in_flight_keys.difference_update((w.item.key.scope, w.item.key.key) for w in group)
            self._lanes -= 1
            # A lane that found nothing to send (only calls held back behind a key in flight) does not
            # restart: the lane applying that key restarts when it is done.
            if group:
                self._start_lane()

    def _take_group(self) -> list[_Waiting]:
        group: list[_Waiting] = []
        keys: set[tuple[str, str]] = set()
        left: deque[_Waiting] = deque()
        while self._queue and len(group) < self._max_group:
            w = self._queue.popleft()
            if w.future.done():  # the caller went away before its call was sent
                continue
            key = (w.item.key.scope, w.item.key.key)
            if key in keys or key in self._in_flight_keys:
                left.append(w)
                continue
            keys.add(key)
            group.append(w)
        left.extend(self._queue)
        self._queue = left
        self._in_flight_keys |= keys
        return group

    async def _apply_group(self, group: list[_Waiting]) -> None:
        try:
            if len(group) == 1:
                try:
                    outcomes = [await group[0].alone()]
                except DomainError as err:
                    outcomes = [ItemOutcome(error=err)]
            else:
                outcomes = await apply_batch_unit(self._engine, self._service, [w.item for w in group])
        except asyncio.CancelledError:
            for w in group:
                w.future.cancel()
            raise
        except Exception:
            # Logged once here, not once per caller: every caller gets its own retryable refusal.
            log.exception("a coalesced group's transaction failed", calls=len(group))
            for w in group:
                if not w.future.done():
                    w.future.set_result(ItemOutcome(error=_group_failed()))
            return
        for w, outcome in zip(group, outcomes, strict=True):
            if not w.future.done():
                w.future.set_result(outcome)
