"""The one place an order changes state, shared by every use case.

Every move consults the transition table of :mod:`payment_svc.domain` (``can_move``): under a row
lock taken by the caller (:meth:`Transitions.move`), or in one statement checked by the database
(:meth:`Transitions.move_at_once`), so a late or duplicate webhook can never move an order backwards.
A move to SUCCESS writes its settlement event in the same unit of work.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from prometheus_client import Counter

from payment_svc.config import PaymentSettings
from payment_svc.domain import OrderState, PendingReason, PspOutcome, can_move, commission_minor
from payment_svc.rows import OrderRow, RefundRow
from payment_svc.uow import UnitOfWork, UnitsOfWork
from svckit.events import outbox
from svckit.logging import get_logger

log = get_logger(__name__)
S = OrderState
# For each target, the states that may move to it (the table read backwards), for moves checked by
# the database in one statement.
SOURCES: dict[OrderState, tuple[str, ...]] = {
    target: tuple(s.value for s in OrderState if s is not target and can_move(s, target))
    for target in OrderState
}

ORDER_TRANSITIONS = Counter(
    "payment_order_transitions_total", "Order state transitions", ["to_state", "cause"]
)
STALE_EVENTS = Counter("payment_stale_transitions_total", "Transitions refused by the state table", ["cause"])


class SettlementSink(Protocol):
    """Receives money movements to settle asynchronously (wallet and ledger), in the unit of work of
    the state change."""

    stream: str
    """The payment events' stream (other events of an order, e.g. its disputes, go there too)."""

    async def order_succeeded(self, uow: UnitOfWork, order: OrderRow, commission_minor: int) -> None: ...

    def order_succeeded_event(self, order: OrderRow, commission_minor: int) -> outbox.EmbeddedEvent:
        """The same event, for a state change that is a single statement (see ``move_if``)."""
        ...

    async def refund_succeeded(self, uow: UnitOfWork, order: OrderRow, refund: RefundRow) -> None: ...


def outcome_change(outcome: PspOutcome) -> tuple[dict[str, Any], str]:
    """(fields, detail) of the move an outcome asks for."""
    fields: dict[str, Any] = {}
    if outcome.psp_reference:
        fields["psp_reference"] = outcome.psp_reference
    if outcome.state is S.FAILED:
        fields.update(failure_code=outcome.failure_code, failure_message=outcome.failure_message)
    if outcome.state is S.PENDING:
        fields.update(
            next_action_url=outcome.next_action_url,
            pending_reason=(outcome.pending_reason or PendingReason.PSP_PROCESSING).value,
        )
    detail = outcome.failure_message or outcome.failure_code or (outcome.psp_reference or "")
    return fields, detail


class Transitions:
    """Moves orders through the table; holds what a move needs (commission rates, the janitor's first
    check, the settlement sink, and the units of work for one-statement moves)."""

    def __init__(self, settings: PaymentSettings, settlement: SettlementSink, uows: UnitsOfWork) -> None:
        self._settings = settings
        self._settlement = settlement
        self._uows = uows

    async def move(
        self,
        uow: UnitOfWork,
        order: OrderRow,
        target: OrderState,
        cause: str,
        detail: str = "",
        **fields: Any,
    ) -> bool:
        """Apply ``target`` to a row locked by the caller if the table allows it. Returns True if the state changed."""
        current = OrderState(order.state)
        if target == current:
            if fields:
                await uow.repo.update_order(order.payment_order_id, **fields)
            return False
        if not can_move(current, target):
            STALE_EVENTS.labels(cause.split(":")[0]).inc()
            log.info(
                "transition refused by the state table",
                payment_order_id=order.payment_order_id,
                current=current.value,
                target=target.value,
                cause=cause,
            )
            return False
        values = self.values(order, target, fields)
        await uow.repo.move_order(
            order.payment_order_id, current.value, target.value, cause, detail, **values
        )
        ORDER_TRANSITIONS.labels(target.value, cause.split(":")[0]).inc()
        if target is S.SUCCESS:
            await self._settlement.order_succeeded(uow, order, values["commission_minor"])
        return True

    def values(self, order: OrderRow, target: OrderState, fields: dict[str, Any]) -> dict[str, Any]:
        """The columns a move to ``target`` sets. Uses only what never changes after creation (amount,
        seller), so it may be computed from a snapshot read before the row was locked."""
        values = dict(fields, state=target.value)
        if target in (S.NOT_STARTED, S.EXECUTING, S.PENDING, S.UNKNOWN):
            values.setdefault(
                "next_check_at",
                datetime.now(UTC) + timedelta(seconds=self._settings.janitor_first_check_seconds),
            )
        else:
            values["next_check_at"] = None
        if target is not S.PENDING:
            values.setdefault("pending_reason", None)
        if target is S.SUCCESS:
            rate = self._settings.commission_overrides_bps.get(
                order.seller_account, self._settings.commission_rate_bps
            )
            values["commission_minor"] = commission_minor(order.amount_minor, rate)
            values["failure_code"] = None
            values["failure_message"] = None
            values["next_action_url"] = None
        return values

    async def move_at_once(
        self, order: OrderRow, target: OrderState, cause: str, detail: str = "", **fields: Any
    ) -> OrderRow | None:
        """The common case of :meth:`move` as one statement on its own: the order moves only if it is
        still in a state the table lets reach ``target`` (checked under the row lock the statement
        takes), with its history row and, for SUCCESS, its settlement event. Returns the moved row, or
        None when it did not move; the caller then takes the locked path, which also handles a
        same-state update and reports a stale transition."""
        values = self.values(order, target, fields)
        event = None
        if target is S.SUCCESS:
            event = self._settlement.order_succeeded_event(order, values["commission_minor"])
        async with self._uows.statement() as uow:
            moved = await uow.repo.move_if(
                order.payment_order_id, SOURCES[target], cause, detail, values, event
            )
        if moved is not None:
            ORDER_TRANSITIONS.labels(target.value, cause.split(":")[0]).inc()
        return moved

    async def apply_outcome(self, uow: UnitOfWork, order: OrderRow, outcome: PspOutcome, cause: str) -> bool:
        fields, detail = outcome_change(outcome)
        return await self.move(uow, order, outcome.state, cause, detail, **fields)
