"""Group commit for single postings: concurrent ``PostTransaction`` calls share one batch statement.

A single posting costs one statement, one commit and a connection checkout; most of that is per call,
not per posting (see docs/benchmarks.md). While a group's statement is in flight (or within a short
window) the coalescer collects the postings that arrive, then sends them together through the batch
path (``LedgerService.post_transactions`` → ``ledger_post_batch``), each with its own call's key, and
answers each caller with its own item's outcome, exactly as ``post_transaction`` would have.

Why the answers are the same:
- Stateless validation runs at once, before queueing (same reasons, no wait, nothing written).
- The batch function decides items one after the other, in arrival order, against the running
  balances, under the same account locks and the same key protocol (tried advisory lock, replay,
  reuse) as the single function; refusals are per item and write nothing.
- Two postings with the same key never share a group (inside one transaction the advisory lock is
  re-entrant, so both would post); the later one waits for the next group, where it replays the first
  or is refused as the single path would refuse it. A key already in flight waits the same way.
- An account is created on first use in its first entry's currency; in a batch that is the first
  item naming it, even if that item is then refused. So a group never holds two postings naming the
  same account in different currencies; the later one waits for the next group.
- A failure of the whole statement (deadlock, lost connection) fails every posting of the group with
  that error; the statement is one transaction, so none of them was written.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from dataclasses import dataclass, field

from ledger_svc.service import ItemKey, ItemOutcome, LedgerService, Posting, validate_posting
from svckit.db import DriverPool


@dataclass
class _Waiting:
    posting: Posting
    key: ItemKey
    future: asyncio.Future[ItemOutcome]
    currencies: dict[str, str] = field(default_factory=dict)


class PostingCoalescer:
    """Posts single postings in groups; ``post`` behaves like ``LedgerService.post_transaction``."""

    def __init__(
        self,
        service: LedgerService,
        pool: DriverPool,
        *,
        window_seconds: float = 0.0,
        max_group: int = 200,
        max_in_flight: int = 1,
    ) -> None:
        self._service = service
        # Plain psycopg connections in autocommit mode: the group's one statement is its own unit of
        # work, and without SQLAlchemy in between a group costs ~100 µs less server CPU (see
        # docs/benchmarks.md). At most one connection per lane is checked out. The coalescer owns the
        # pool and closes it.
        self._pool = pool
        self._window = window_seconds
        self._max_group = max_group
        self._max_in_flight = max_in_flight
        self._queue: deque[_Waiting] = deque()
        self._in_flight_keys: set[tuple[str, str]] = set()
        self._lanes = 0  # groups being collected or posted
        self._collecting = False  # a lane is collecting: new arrivals join it, no new lane is needed
        self._tasks: set[asyncio.Task] = set()

    async def post(self, posting: Posting, key: ItemKey) -> ItemOutcome:
        """The new transaction or the key's stored answer; raises the refusal (DomainError) otherwise."""
        valid = validate_posting(posting)  # refused at once, before the key is looked at
        waiting = _Waiting(valid, key, asyncio.get_running_loop().create_future())
        for e in valid.entries:
            waiting.currencies[e.account] = e.currency
        self._queue.append(waiting)
        self._start_lane()
        # A cancelled caller leaves its future cancelled: a group not yet formed skips it; a group in
        # flight posts it anyway (as a single statement already sent to the database would).
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
        await self._pool.close()

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
                await self._post_group(group)
        finally:
            if collecting:  # cancelled while collecting
                self._collecting = False
            self._in_flight_keys.difference_update((w.key.scope, w.key.key) for w in group)
            self._lanes -= 1
            # A lane that found nothing to send (only postings held back behind a key in flight)
            # does not restart: the lane posting that key restarts when it is done.
            if group:
                self._start_lane()

    def _take_group(self) -> list[_Waiting]:
        group: list[_Waiting] = []
        keys: set[tuple[str, str]] = set()
        currencies: dict[str, str] = {}
        left: deque[_Waiting] = deque()
        while self._queue and len(group) < self._max_group:
            w = self._queue.popleft()
            if w.future.done():  # the caller went away before its posting was sent
                continue
            key = (w.key.scope, w.key.key)
            if (
                key in keys
                or key in self._in_flight_keys
                or any(currencies.get(a, c) != c for a, c in w.currencies.items())
            ):
                left.append(w)
                continue
            keys.add(key)
            currencies.update(w.currencies)
            group.append(w)
        left.extend(self._queue)
        self._queue = left
        self._in_flight_keys |= keys
        return group

    async def _post_group(self, group: list[_Waiting]) -> None:
        try:
            # A connection whose statement failed or was cancelled goes back to the pool, which
            # discards it unless it is idle again.
            async with self._pool.connection() as conn:
                outcomes = await self._service.post_transactions(
                    conn, [(w.posting, w.key) for w in group], validated=True
                )
        except asyncio.CancelledError:
            for w in group:
                w.future.cancel()
            raise
        except Exception as exc:
            for w in group:
                if not w.future.done():
                    w.future.set_exception(exc)
            return
        for w, outcome in zip(group, outcomes, strict=True):
            if not w.future.done():
                w.future.set_result(outcome)
