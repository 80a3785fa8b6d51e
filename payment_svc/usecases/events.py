"""HandlePspEvent: apply a verified PSP event (PaymentIntent outcomes, Checkout Session outcomes,
refund updates) to the orders it concerns, and find those orders from the event's object."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from payment_svc import psp_objects
from payment_svc.domain import OrderState, PendingReason, outcome_of
from payment_svc.psp_objects import (
    AccountView,
    CheckoutSessionView,
    DisputeView,
    PaymentIntentView,
    PayoutView,
    RefundView,
)
from payment_svc.repository import UNCERTAIN_STATES
from payment_svc.rows import CheckoutRow, OrderRow
from payment_svc.uow import UnitOfWork
from payment_svc.usecases.deps import Deps, UseCase
from payment_svc.usecases.disputes import apply_dispute
from payment_svc.usecases.refunds import Refunds
from svckit.db import one_row
from svckit.errors import InvalidArgument
from svckit.identifiers import is_email
from svckit.logging import get_logger

log = get_logger(__name__)
S = OrderState

PayoutEventSink = Callable[[str, PayoutView | AccountView, int | None, str], Awaitable[bool]]
"""Takes a payout or connected-account event (event id, object, the PSP's event time, cause) to
pay-outs (payment_svc.payouts): a payout's is recorded in the pay-out inbox and applied after
HandlePspEvent has answered (False), an account's is applied at once (True when it changed a seller)."""


class PspEvents(UseCase):
    def __init__(self, deps: Deps, refunds: Refunds, payouts: PayoutEventSink | None = None) -> None:
        super().__init__(deps)
        self._refunds = refunds
        self._payouts = payouts

    async def accept_payout_event(self, event_id: str, event_type: str, payload: bytes) -> bool | None:
        """A pay-outs event (a payout's, recorded in the pay-out inbox to be applied after the answer;
        a connected account's, applied at once): whether it changed something already. None when the
        event is neither (or pay-outs are not wired), for the other paths to decide."""
        if self._payouts is None:
            return None
        try:
            psp_event = psp_objects.event(event_type, payload)
        except psp_objects.NotAnEvent:
            return None  # the full path refuses it with INVALID_PAYLOAD
        if not isinstance(psp_event.object, PayoutView | AccountView):
            return None
        cause = f"psp_event:{psp_event.type} {event_id}"
        return await self._payouts(event_id, psp_event.object, psp_event.created, cause)

    async def apply_event_at_once(self, event_type: str, payload: bytes) -> list[str] | None:
        """The common PaymentIntent events without a transaction; None when the full path must decide.

        - Any outcome event whose orders all have their money captured already changes nothing (the
          table allows only refunds from there): typically the ``payment_intent.succeeded`` that
          follows our own confirmation. Answered from one read: ``[]``.
        - A direct-mode ``payment_intent.succeeded`` that beats our own record of the confirmation
          moves the checkout's orders its metadata names with the one-statement move (history row and
          settlement event included): their ids. The move is conditional on each order's state, so a
          redelivery, or our own confirmation answer arriving later, finds it captured and changes
          nothing.
        Neither leaves an idempotency record: the orders' state is what makes them idempotent.
        Anything else, including a payload we cannot read, or metadata without the order ids (too
        many to fit), takes the full path.
        """
        try:
            psp_event = psp_objects.event(event_type, payload)
        except psp_objects.NotAnEvent:
            return None
        kind, intent = psp_event.type, psp_event.object
        if not isinstance(intent, PaymentIntentView) or intent.id is None:
            return None  # not an outcome event, or one without an id
        intent_id = intent.id
        order_ids = intent.payment_order_ids  # direct mode
        async with self._uows.statement() as uow:
            if await uow.repo.intent_orders_all_captured(intent_id):
                return []
            if kind != "payment_intent.succeeded" or intent.status != "succeeded":
                return None
            if not order_ids:
                return None
            found = [await uow.repo.get_order_plain(order_id) for order_id in order_ids]
        orders = [o for o in found if o is not None and o.psp_reference in (None, intent_id)]
        if len(orders) < len(found):
            return None  # an order we do not have, or one another PaymentIntent paid: the full path
        cause = f"psp_event:{kind} {psp_event.id}".strip()
        moved = await asyncio.gather(
            *(
                self._moves.move_at_once(o, S.SUCCESS, cause, intent_id, psp_reference=intent_id)
                for o in orders
            )
        )
        changed = [row.payment_order_id for row in moved if row is not None]
        if len(changed) < len(orders):
            # An order the one-statement move could not take (already moved, or in a state that
            # cannot reach SUCCESS): the full path decides for the ones still to move, under locks.
            return None
        return changed

    async def handle_psp_event(self, uow: UnitOfWork, event_type: str, payload: bytes) -> list[str]:
        """Apply one verified PSP event in the caller's unit of work (a transaction); return the orders
        it changed."""
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
            found = await self._orders_for_intent(uow, obj)
            if found is None:
                return []
            orders, event = found
            outcome = outcome_of(obj, direct_mode=event.mode == "DIRECT")
            for order in orders:
                if outcome.state is S.EXECUTING and event.mode == "HOSTED":
                    # One attempt on the hosted page, not the payment's end: note declines while open.
                    if kind == "payment_intent.payment_failed" and order.state in UNCERTAIN_STATES:
                        code = obj.last_error_code or "declined"
                        await uow.repo.add_transition(
                            order.payment_order_id,
                            order.state,
                            order.state,
                            cause,
                            f"attempt declined on the hosted page: {code}",
                        )
                    continue
                if await self._moves.apply_outcome(uow, order, outcome, f"{cause} {detail}".strip()):
                    changed.append(order.payment_order_id)
        elif isinstance(obj, CheckoutSessionView):
            session_event = await self._event_for_session(uow, obj)
            if session_event is None:
                return []
            orders = await uow.repo.orders_of_checkout(session_event.checkout_id, for_update=True)
            if session_event.psp_session_id is None:
                await uow.repo.update_event(session_event.checkout_id, psp_session_id=obj.id)
            pi_id = obj.payment_intent_id
            if kind in ("checkout.session.completed", "checkout.session.async_payment_succeeded"):
                await self._take_buyer_email(uow, session_event, obj.customer_email)
                target = S.SUCCESS if obj.paid else S.PENDING
                for order in orders:
                    fields: dict[str, str] = {"psp_reference": pi_id} if pi_id else {}
                    if target is S.PENDING:
                        fields["pending_reason"] = PendingReason.PSP_PROCESSING.value
                    if await self._moves.move(uow, order, target, cause, detail, **fields):
                        changed.append(order.payment_order_id)
            elif kind in ("checkout.session.expired", "checkout.session.async_payment_failed"):
                code = "expired" if kind.endswith("expired") else "async_payment_failed"
                for order in orders:
                    if await self._moves.move(
                        uow,
                        order,
                        S.FAILED,
                        cause,
                        detail,
                        failure_code=code,
                        failure_message=f"checkout session {code.replace('_', ' ')}",
                    ):
                        changed.append(order.payment_order_id)
        elif isinstance(obj, RefundView):
            changed = await self._refunds.apply_refund_object(uow, obj, cause)
        elif isinstance(obj, DisputeView):
            changed = await apply_dispute(uow, obj, kind, detail, self._settlement.stream)
        return changed

    async def _orders_for_intent(
        self, uow: UnitOfWork, pi: PaymentIntentView
    ) -> tuple[list[OrderRow], CheckoutRow] | None:
        """The orders the PaymentIntent is for (locked) and their checkout; None when none is ours."""
        orders: list[OrderRow] = []
        if pi.id is not None:
            orders = await uow.repo.orders_by_psp_reference(pi.id, for_update=True)
        meta = pi.metadata
        if not orders and pi.payment_order_ids:
            # The PSP's event can beat our own record of the PaymentIntent: find the orders by our ids.
            orders = await uow.repo.orders_by_ids(list(pi.payment_order_ids), for_update=True)
        if not orders and "checkout_id" in meta:
            orders = await uow.repo.orders_of_checkout(meta["checkout_id"], for_update=True)
        if not orders:
            log.info("PSP event for a payment that is not ours", payment_intent=pi.id)
            return None
        event = one_row(await uow.repo.get_event(orders[0].checkout_id), "checkout of stored orders")
        return orders, event

    @staticmethod
    async def _take_buyer_email(uow: UnitOfWork, event: CheckoutRow, typed: str | None) -> None:
        """The e-mail the buyer typed on the hosted page becomes the checkout's buyer e-mail (the buyer
        may have corrected the one the shop sent); something that is not an address is ignored."""
        buyer = dict(event.buyer_info or {})
        if not typed or typed == buyer.get("email") or not is_email(typed):
            return
        buyer["email"] = typed
        await uow.repo.update_event(event.checkout_id, buyer_info=buyer)

    async def _event_for_session(self, uow: UnitOfWork, session: CheckoutSessionView) -> CheckoutRow | None:
        event = await uow.repo.get_event_by_session(session.id or "")
        if event is None and session.checkout_id:
            event = await uow.repo.get_event(session.checkout_id)
        return event
