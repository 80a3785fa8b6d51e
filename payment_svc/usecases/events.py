"""HandlePspEvent: apply a verified PSP event (PaymentIntent outcomes, Checkout Session outcomes,
refund updates) to the orders it concerns, and find those orders from the event's object."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from payment_svc import psp_objects
from payment_svc import repository as repo
from payment_svc.domain import OrderState, PendingReason, outcome_of
from payment_svc.psp_objects import CheckoutSessionView, PaymentIntentView, PayoutView, RefundView
from payment_svc.usecases.deps import Deps, UseCase
from payment_svc.usecases.refunds import Refunds
from svckit.errors import InvalidArgument
from svckit.logging import get_logger

log = get_logger(__name__)
S = OrderState

PayoutEventSink = Callable[[AsyncConnection, PayoutView, str], Awaitable[list[str]]]
"""Applies a payout event inside HandlePspEvent's transaction (payment_svc.payouts); the pay-outs changed."""


class PspEvents(UseCase):
    def __init__(self, deps: Deps, refunds: Refunds, payouts: PayoutEventSink | None = None) -> None:
        super().__init__(deps)
        self._refunds = refunds
        self._payouts = payouts

    async def apply_event_at_once(self, event_type: str, payload: bytes) -> list[str] | None:
        """The common PaymentIntent events without a transaction; None when the full path must decide.

        - Any outcome event whose orders all have their money captured already changes nothing (the
          table allows only refunds from there): typically the ``payment_intent.succeeded`` that
          follows our own confirmation. Answered from one read: ``[]``.
        - A direct-mode ``payment_intent.succeeded`` that beats our own record of the confirmation
          moves its order with the one-statement move (history row and settlement event included):
          ``[order id]``. The move is conditional on the order's state, so a redelivery, or our own
          confirmation answer arriving later, finds it captured and changes nothing.
        Neither leaves an idempotency record: the order's state is what makes them idempotent.
        Anything else, including a payload we cannot read, takes the full path.
        """
        try:
            psp_event = psp_objects.event(event_type, payload)
        except psp_objects.NotAnEvent:
            return None
        kind, intent = psp_event.type, psp_event.object
        if not isinstance(intent, PaymentIntentView) or intent.id is None:
            return None  # not an outcome event, or one without an id
        intent_id = intent.id
        order_id = intent.metadata.get("payment_order_id")  # direct mode
        async with self._driver.connection() as conn:
            if await repo.intent_orders_all_captured(conn, intent_id):
                return []
            if kind != "payment_intent.succeeded" or intent.status != "succeeded":
                return None
            if order_id is None:
                return None
            order = await repo.get_order_plain(conn, order_id)
        if order is None or order.psp_reference not in (None, intent_id):
            return None
        cause = f"psp_event:{kind} {psp_event.id}".strip()
        moved = await self._moves.move_at_once(order, S.SUCCESS, cause, intent_id, psp_reference=intent_id)
        return None if moved is None else [order_id]

    async def handle_psp_event(self, conn: AsyncConnection, event_type: str, payload: bytes) -> list[str]:
        """Apply one verified PSP event inside the caller's transaction; return the orders it changed."""
        try:
            psp_event = psp_objects.event(event_type, payload)
        except psp_objects.NotAnEvent:
            raise InvalidArgument(
                "INVALID_PAYLOAD", "payload is not a PSP event with data.object", field="payload"
            ) from None
        kind, obj = psp_event.type, psp_event.object
        cause = f"psp_event:{kind}"
        detail = psp_event.id
        changed: list[str] = []
        if isinstance(obj, PaymentIntentView):
            orders, event = await self._orders_for_intent(conn, obj)
            if not orders:
                return []
            outcome = outcome_of(obj, direct_mode=event.mode == "DIRECT")
            for order in orders:
                if outcome.state is S.EXECUTING and event.mode == "HOSTED":
                    # One attempt on the hosted page, not the payment's end: note declines while open.
                    if kind == "payment_intent.payment_failed" and order.state in repo.UNCERTAIN_STATES:
                        code = obj.last_error_code or "declined"
                        await repo.add_transition(
                            conn,
                            order.payment_order_id,
                            order.state,
                            order.state,
                            cause,
                            f"attempt declined on the hosted page: {code}",
                        )
                    continue
                if await self._moves.apply_outcome(conn, order, outcome, f"{cause} {detail}".strip()):
                    changed.append(order.payment_order_id)
        elif isinstance(obj, CheckoutSessionView):
            event = await self._event_for_session(conn, obj)
            if event is None:
                return []
            orders = await repo.orders_of_checkout(conn, event.checkout_id, for_update=True)
            if event.psp_session_id is None:
                await repo.update_event(conn, event.checkout_id, psp_session_id=obj.id)
            pi_id = obj.payment_intent_id
            if kind in ("checkout.session.completed", "checkout.session.async_payment_succeeded"):
                target = S.SUCCESS if obj.paid else S.PENDING
                for order in orders:
                    fields = {"psp_reference": pi_id} if pi_id else {}
                    if target is S.PENDING:
                        fields["pending_reason"] = PendingReason.PSP_PROCESSING.value
                    if await self._moves.move(conn, order, target, cause, detail, **fields):
                        changed.append(order.payment_order_id)
            elif kind in ("checkout.session.expired", "checkout.session.async_payment_failed"):
                code = "expired" if kind.endswith("expired") else "async_payment_failed"
                for order in orders:
                    if await self._moves.move(
                        conn,
                        order,
                        S.FAILED,
                        cause,
                        detail,
                        failure_code=code,
                        failure_message=f"checkout session {code.replace('_', ' ')}",
                    ):
                        changed.append(order.payment_order_id)
        elif isinstance(obj, RefundView):
            changed = await self._refunds.apply_refund_object(conn, obj, cause)
        elif isinstance(obj, PayoutView) and self._payouts is not None:
            changed = await self._payouts(conn, obj, f"{cause} {detail}".strip())
        return changed

    async def _orders_for_intent(self, conn: AsyncConnection, pi: PaymentIntentView) -> tuple[list[Any], Any]:
        orders = []
        if pi.id is not None:
            orders = await repo.orders_by_psp_reference(conn, pi.id, for_update=True)
        meta = pi.metadata
        if not orders and "payment_order_id" in meta:
            # The PSP's event can beat our own record of the PaymentIntent: find the order by our id.
            orders = await repo.orders_by_ids(conn, [meta["payment_order_id"]], for_update=True)
        if not orders and "checkout_id" in meta:
            orders = await repo.orders_of_checkout(conn, meta["checkout_id"], for_update=True)
        if not orders:
            log.info("PSP event for a payment that is not ours", payment_intent=pi.id)
            return [], None
        return orders, await repo.get_event(conn, orders[0].checkout_id)

    async def _event_for_session(self, conn: AsyncConnection, session: CheckoutSessionView) -> Any:
        event = await repo.get_event_by_session(conn, session.id or "")
        if event is None and session.checkout_id:
            event = await repo.get_event(conn, session.checkout_id)
        return event
