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
- Two postings with the same key never share a group (``svckit.coalescing``); the later one replays
  the first or is refused as the single path would refuse it.
- An account is created on first use in its first entry's currency; in a batch that is the first
  item naming it, even if that item is then refused. So each posting claims its accounts' currencies:
  a group never holds two postings naming the same account in different currencies.
- A failure of the whole statement fails every posting of the group retryably (a deadlock as
  ``TRANSIENT_CONFLICT``, anything else as ``GROUP_TRANSACTION_FAILED``); the statement is one
  transaction, so none of them was written.
"""

from __future__ import annotations

from ledger_svc.domain import Posting
from ledger_svc.service import LedgerService
from ledger_svc.uow import LedgerUnitOfWork, RecordKey, StoredAnswer
from ledger_svc.validation import validate_posting
from svckit.coalescing import Coalescer
from svckit.db import DriverPool
from svckit.errors import DomainError


class PostingCoalescer:
    """Posts single postings in groups; ``post`` behaves like ``LedgerService.post_transaction``."""

    def __init__(
        self,
        service: LedgerService,
        uow: LedgerUnitOfWork,
        pool: DriverPool,
        *,
        window_seconds: float = 0.0,
        max_group: int = 200,
        max_in_flight: int = 1,
    ) -> None:
        self._service = service
        # The group's one statement is its own unit of work, on a plain psycopg connection of the
        # coalescer's own pool (at most one per lane is checked out). The coalescer closes the pool.
        self._uow = uow.with_statements(pool)
        self._pool = pool
        self._groups: Coalescer[tuple[Posting, RecordKey], StoredAnswer | DomainError] = Coalescer(
            self._post_group,
            name="ledger",
            window_seconds=window_seconds,
            max_group=max_group,
            max_in_flight=max_in_flight,
        )

    async def post(self, posting: Posting, key: RecordKey) -> StoredAnswer:
        """The answer stored under the key (new or replayed); raises the refusal (DomainError) otherwise."""
        valid = validate_posting(posting)  # refused at once, before the key is looked at
        claims = {e.account: e.currency for e in valid.entries}
        outcome = await self._groups.submit((valid, key), (key.scope, key.key), claims)
        if isinstance(outcome, DomainError):
            raise outcome
        return outcome

    async def close(self) -> None:
        await self._groups.close()
        await self._pool.close()

    async def _post_group(self, items: list[tuple[Posting, RecordKey]]) -> list[StoredAnswer | DomainError]:
        return await self._service.post_transactions(self._uow, items, validated=True)
