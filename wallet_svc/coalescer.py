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
- Two calls with the same (scope, key) never share a group (``svckit.coalescing``); the later one
  replays the first or is refused as the single path would refuse it.
- A call that finds no company (a group of one) takes the plain path itself (``alone``): the reference
  behaviour, and cheaper than a batch of one.
- A failure of the whole transaction (lost connection, a bug) is logged once and answers every call
  of the group UNAVAILABLE ``GROUP_TRANSACTION_FAILED``: the group is one transaction, so none of them
  was written (or, if the commit's answer was lost, all were), and a retry with the same key applies
  or replays it. The plain path would answer that one call INTERNAL; this is the one deliberate
  difference, so that one database fault does not become N logged tracebacks.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from svckit.coalescing import Coalescer
from svckit.errors import DomainError
from svckit.idempotency import StoredAnswer
from wallet_svc.domain import BatchItem, ItemOutcome
from wallet_svc.service import WalletService
from wallet_svc.uow import WalletUnitOfWork

_Call = tuple[BatchItem, Callable[[], Awaitable[StoredAnswer]]]


class MovementCoalescer:
    """Applies single credits/debits in groups; ``apply`` answers like the single Credit/Debit."""

    def __init__(
        self,
        service: WalletService,
        uow: WalletUnitOfWork,
        *,
        window_seconds: float = 0.0,
        max_group: int = 200,
        max_in_flight: int = 1,
    ) -> None:
        self._service = service
        self._uow = uow
        self._groups: Coalescer[_Call, ItemOutcome] = Coalescer(
            self._apply_group,
            name="wallet",
            window_seconds=window_seconds,
            max_group=max_group,
            max_in_flight=max_in_flight,
        )

    async def apply(self, item: BatchItem, alone: Callable[[], Awaitable[StoredAnswer]]) -> StoredAnswer:
        """The new movement or the key's stored answer; raises the refusal (DomainError) otherwise.

        ``alone`` is the call's one-transaction-per-call path, used when the call finds no company:
        it is the reference behaviour, and cheaper than a batch of one (three statements, no lock
        function).
        """
        outcome = await self._groups.submit((item, alone), (item.key.scope, item.key.key))
        if isinstance(outcome, DomainError):
            raise outcome
        return outcome

    async def close(self) -> None:
        await self._groups.close()

    async def _apply_group(self, calls: list[_Call]) -> list[ItemOutcome]:
        if len(calls) == 1:
            (_, alone) = calls[0]
            try:
                return [await alone()]
            except DomainError as err:  # the call's own refusal, not the group's failure
                return [err]
        return await self._service.apply_batch(self._uow, [item for item, _ in calls])
