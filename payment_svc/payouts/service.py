"""The pay-out use cases over one set of dependencies (built by payment_svc.bootstrap)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from payment_svc.payouts.debts import SellerDebts
from payment_svc.payouts.deps import PayoutDeps
from payment_svc.payouts.domain import PayoutRow, TransitionRow
from payment_svc.payouts.events import PayoutAnswers
from payment_svc.payouts.inbox import PayoutInbox, fact_of
from payment_svc.payouts.janitor import PayoutJanitor
from payment_svc.payouts.registry import SellerRegistry
from payment_svc.payouts.run import PayoutRuns
from payment_svc.payouts.scheduler import PayoutScheduler
from payment_svc.payouts.statements import Statements
from payment_svc.payouts.steps import PayoutSteps
from payment_svc.psp_objects import AccountView, PayoutView
from svckit.errors import NotFound


class Payouts:
    def __init__(self, deps: PayoutDeps) -> None:
        self.deps = deps
        self.registry = SellerRegistry(deps)
        self.steps = PayoutSteps(deps)
        self.runs = PayoutRuns(deps, self.steps)
        self.answers = PayoutAnswers(deps)
        self.inbox = PayoutInbox(deps, self.answers)
        self.janitor = PayoutJanitor(deps, self.runs, self.steps, self.inbox)
        self.scheduler = PayoutScheduler(deps, self.runs)
        self.statements = Statements(deps, self.registry)
        self.debts = SellerDebts(deps)
        self._closers: list[Callable[[], Awaitable[None]]] = []

    def on_close(self, *closers: Callable[[], Awaitable[None]]) -> None:
        self._closers.extend(closers)

    async def accept_psp_event(
        self, event_id: str, obj: PayoutView | AccountView, created: int | None, cause: str
    ) -> bool:
        """A PSP event for pay-outs. A payout's final status is recorded in the inbox (one statement,
        once per event id) and applied by its worker after the answer: False. A connected account's
        ``payouts_enabled`` is noted on its sellers with the event's time (a later word is kept):
        True when a seller changed."""
        if isinstance(obj, AccountView):
            if obj.id is None:
                return False
            at = datetime.fromtimestamp(created, UTC) if created is not None else datetime.now(UTC)
            async with self.deps.store.unit() as repo:
                return await repo.note_psp_account(obj.id, obj.payouts_enabled, at) > 0
        fact = fact_of(event_id, obj, created, cause)
        if fact is not None:
            await self.inbox.record(fact)
        return False

    async def get_payout(self, payout_id: str) -> tuple[PayoutRow, list[TransitionRow]]:
        async with self.deps.store.unit() as repo:
            payout = await repo.get_payout(payout_id)
            history = await repo.history(payout_id) if payout else []
        if payout is None:
            raise NotFound("PAYOUT_NOT_FOUND", f"no pay-out {payout_id!r}", {"payout_id": payout_id})
        return payout, history

    async def close(self) -> None:
        await self.runs.close()
        for close in self._closers:
            await close()
