"""The janitor: asks the PSP about every order still uncertain past its next check, finishes
registrations that never happened, reschedules with backoff and alerts once past the deadline; and
sends again the refunds whose PSP call got no answer."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client import Counter

from payment_svc.domain import OrderState, PendingReason, outcome_of
from payment_svc.psp import PspError
from payment_svc.psp_objects import PaymentIntentView
from payment_svc.repository import UNCERTAIN_STATES
from payment_svc.usecases import queries
from payment_svc.usecases.checkout import Checkout
from payment_svc.usecases.deps import Deps, UseCase
from payment_svc.usecases.refunds import Refunds
from svckit.errors import Internal
from svckit.logging import get_logger
from svckit.runtime import stop_if_cancelled

log = get_logger(__name__)
S = OrderState

ORDERS_PAST_DEADLINE = Counter(
    "payment_orders_past_deadline_total", "Orders still uncertain past their deadline"
)


class Janitor(UseCase):
    def __init__(self, deps: Deps, checkout: Checkout, refunds: Refunds) -> None:
        super().__init__(deps)
        self._checkout = checkout
        self._refunds = refunds

    async def janitor_pass(self) -> int:
        """Ask the PSP about every order that has been uncertain for too long, and send the unanswered
        refunds again. Returns orders and refunds looked at."""
        async with self._uows.transaction() as uow:
            due = await uow.repo.claim_due_uncertain_orders(
                self._settings.janitor_batch_size, self._settings.janitor_lease_seconds
            )
        checkouts = sorted({row.checkout_id for row in due})
        for checkout_id in checkouts:
            try:
                await self._resolve_checkout(checkout_id)
            except Exception:
                log.exception("janitor could not resolve a checkout", checkout_id=checkout_id)
        await self._reschedule([row.payment_order_id for row in due])
        try:
            resent = await self._refunds.resend_unanswered()
        except Exception:
            log.exception("janitor could not look for unanswered refunds")
            resent = 0
        return len(due) + resent

    async def recheck_order(self, payment_order_id: str) -> None:
        """Ask the PSP now about one order's checkout (reconciliation found the PSP charged it)."""
        async with self._uows.reader() as uow:
            order = await queries.get_order(uow, payment_order_id)  # MISSING_FIELD, PAYMENT_ORDER_NOT_FOUND
        await self._resolve_checkout(order.checkout_id)

    async def _resolve_checkout(self, checkout_id: str) -> None:
        await self._checkout.drive(checkout_id)  # registrations that never happened or timed out
        async with self._uows.reader() as uow:
            event = await uow.repo.get_event(checkout_id)
            orders = await uow.repo.orders_of_checkout(checkout_id)
        uncertain = [
            o
            for o in orders
            if o.state in UNCERTAIN_STATES and o.pending_reason != PendingReason.RISK_REVIEW.value
        ]
        if not uncertain:
            return
        if event is None:  # its orders reference it: a missing checkout is a broken invariant
            raise Internal("CHECKOUT_MISSING", f"checkout {checkout_id!r} of uncertain orders is missing")
        if event.mode == "HOSTED" and event.psp_session_id:
            try:
                session = await self._psp.retrieve_checkout_session(event.psp_session_id)
            except PspError as exc:
                log.warning("janitor: PSP unavailable", checkout_id=checkout_id, error=exc.message)
                return
            status, paid, pi_id = session.status, session.paid, session.payment_intent_id
            async with self._uows.transaction() as uow:
                for order in await uow.repo.orders_by_ids(
                    [o.payment_order_id for o in uncertain], for_update=True
                ):
                    if status == "complete" and paid:
                        await self._moves.move(
                            uow,
                            order,
                            S.SUCCESS,
                            "janitor",
                            "checkout session complete",
                            **({"psp_reference": pi_id} if pi_id else {}),
                        )
                    elif status == "expired":
                        await self._moves.move(
                            uow,
                            order,
                            S.FAILED,
                            "janitor",
                            "checkout session expired",
                            failure_code="expired",
                            failure_message="checkout session expired",
                        )
            return
        # Direct mode: one PaymentIntent per checkout. Asked once for all of its uncertain orders, and
        # its outcome applied to each of them in one transaction, as a webhook for it would be.
        by_intent: dict[str | None, list[str]] = {}
        for order in uncertain:
            by_intent.setdefault(order.psp_reference, []).append(order.payment_order_id)
        for intent_id, order_ids in by_intent.items():
            pi: PaymentIntentView | None
            try:
                if intent_id:
                    pi = await self._psp.retrieve_payment_intent(intent_id)
                else:
                    # The create's answer was lost and its key keeps replaying an error: the PSP may
                    # still have made the PaymentIntent, and our metadata is how we recognise it.
                    since = int(min(o.created_at for o in uncertain).timestamp()) - 300
                    pi = await self._psp.find_payment_intent(checkout_id, since)
                    if pi is None:
                        continue  # still unknown: rescheduled with backoff, alerted at its deadline
            except PspError as exc:
                log.warning("janitor: PSP unavailable", checkout_id=checkout_id, error=exc.message)
                continue
            outcome = outcome_of(pi, event.mode == "DIRECT")
            async with self._uows.transaction() as uow:
                for locked in await uow.repo.orders_by_ids(list(order_ids), for_update=True):
                    await self._moves.apply_outcome(uow, locked, outcome, "janitor")

    async def _reschedule(self, order_ids: Sequence[str]) -> None:
        settings = self._settings
        now = datetime.now(UTC)
        async with self._uows.transaction() as uow:
            for order in await uow.repo.orders_by_ids(order_ids, for_update=True):
                if order.state not in UNCERTAIN_STATES:
                    continue
                attempts = order.janitor_attempts + 1
                delay = min(
                    settings.janitor_first_check_seconds * 2**attempts, settings.janitor_max_backoff_seconds
                )
                values: dict[str, Any] = {
                    "janitor_attempts": attempts,
                    "next_check_at": now + timedelta(seconds=max(delay, 1.0)),
                }
                past = (now - order.created_at).total_seconds() > settings.order_deadline_seconds
                if past and order.alerted_at is None:
                    ORDERS_PAST_DEADLINE.inc()
                    log.error(
                        "payment order past its deadline and still uncertain",
                        payment_order_id=order.payment_order_id,
                        state=order.state,
                        age_seconds=int((now - order.created_at).total_seconds()),
                    )
                    values["alerted_at"] = now
                await uow.repo.set_janitor_schedule(order.payment_order_id, **values)

    async def janitor_forever(self) -> None:
        while True:
            started = time.monotonic()
            try:
                await self.janitor_pass()
            except Exception:
                log.exception("janitor pass failed; will retry")
            stop_if_cancelled()  # a pass's own per-item handlers may have caught a converted cancellation
            await asyncio.sleep(
                max(0.0, self._settings.janitor_interval_seconds - (time.monotonic() - started))
            )
