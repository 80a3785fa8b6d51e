"""CreatePayment: validate, store the checkout and its orders with the risk verdict, register them
with the PSP: one charge per checkout, a hosted Checkout Session or, in direct mode, one PaymentIntent
for the sum of the checkout's orders whose outcome every order then records as its own.

Resumable: every PSP call carries an idempotency key derived from the checkout id
(``<checkout_id>:session``, ``<checkout_id>:intent``) and the same parameters on every attempt, so
:meth:`Checkout.drive` (a retried request, a review's approval, the janitor) can only replay what an
earlier attempt did not record. The PSP keeps a key for a limited time only (Stripe: 24 hours), after
which the same key would charge again, so a resumed direct checkout first looks for its PaymentIntent at
the PSP (by our metadata) and resends the create only when there is none.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from payment_svc.domain import OrderState, PendingReason, PspOutcome, outcome_of
from payment_svc.psp import LineItem, PspDeclined, PspError, PspUnavailable
from payment_svc.risk import CheckoutFacts, RiskVerdict
from payment_svc.rows import CheckoutRow, OrderRow
from payment_svc.uow import CheckoutIdTaken, PaymentOrderIdTaken
from payment_svc.usecases import queries
from payment_svc.usecases.commands import CheckoutView, CreatePayment, validate
from payment_svc.usecases.deps import UseCase
from payment_svc.usecases.transitions import outcome_change
from svckit.errors import AlreadyExists, Unprocessable
from svckit.logging import get_logger

log = get_logger(__name__)
S = OrderState


class Checkout(UseCase):
    async def create_payment(
        self, cmd: CreatePayment, idempotency_key: str, fingerprint: bytes
    ) -> CheckoutView:
        currency = validate(cmd, self._settings)
        # Stored first, looked up only on conflict: a new checkout (the common case) costs no read.
        stored = await self._store_checkout(cmd, currency, idempotency_key, fingerprint)
        if stored is None:
            log.info("resuming checkout", checkout_id=cmd.checkout_id)
            await self.drive(cmd.checkout_id)
        else:
            event, orders = stored
            moved = await self._drive(event, orders)
            if orders and len(moved) == len(orders):
                # Every order's outcome came back from its own statement: the answer needs no read.
                return CheckoutView(event, sorted(moved, key=lambda o: o.payment_order_id))
        async with self._uows.reader() as uow:
            return await queries.get_checkout(uow, cmd.checkout_id)

    async def _store_checkout(
        self, cmd: CreatePayment, currency: str, key: str, fingerprint: bytes
    ) -> tuple[CheckoutRow, list[OrderRow]] | None:
        """Store a new checkout with its orders; return them as stored, or None when this key already
        stored this checkout (a retry resumes it). Another key's checkout is ALREADY_EXISTS."""
        total = sum(o.amount_minor for o in cmd.orders)
        since = datetime.now(UTC) - timedelta(seconds=self._settings.risk_velocity_window_seconds)
        async with self._uows.statement() as uow:
            recent_count, recent_amount = await uow.repo.buyer_velocity(cmd.buyer.buyer_id, since)
        decision = await self._risk.assess(
            CheckoutFacts(
                cmd.buyer.buyer_id,
                currency,
                total,
                tuple(o.seller_account for o in cmd.orders),
                recent_count,
                recent_amount,
            )
        )
        approved = decision.verdict is RiskVerdict.APPROVE
        new_checkout = (
            {
                "checkout_id": cmd.checkout_id,
                "buyer_id": cmd.buyer.buyer_id,
                "buyer_info": {
                    "buyer_id": cmd.buyer.buyer_id,
                    "email": cmd.buyer.email,
                    "name": cmd.buyer.name,
                    "country": cmd.buyer.country,
                },
                "mode": "DIRECT" if cmd.direct else "HOSTED",
                "currency": currency,
                "total_minor": total,
                "success_url": cmd.success_url,
                "cancel_url": cmd.cancel_url,
                "payment_method": cmd.payment_method,
                "idempotency_key": key,
                "fingerprint": fingerprint,
                "risk_verdict": decision.verdict.value,
                "risk_rule": decision.rule,
            },
            [
                (
                    o.payment_order_id,
                    o.seller_account,
                    o.amount_minor,
                    [{"name": li.name, "quantity": li.quantity} for li in o.line_items],
                )
                for o in cmd.orders
            ],
            datetime.now(UTC) + timedelta(seconds=self._settings.janitor_first_check_seconds),
        )
        try:
            # Approved, the checkout is one statement and needs no transaction around it; held or
            # declined, its orders move in the same transaction, so no order is ever stored as
            # NOT_STARTED on its own for the janitor to register against the risk verdict.
            if approved:
                async with self._uows.statement() as uow:
                    event, orders = await uow.repo.insert_checkout(*new_checkout)
            else:
                async with self._uows.transaction() as uow:
                    event, orders = await uow.repo.insert_checkout(*new_checkout)
                    for order in orders:  # inserted by this transaction: locked already
                        if decision.verdict is RiskVerdict.DECLINE:
                            await self._moves.move(
                                uow,
                                order,
                                S.FAILED,
                                f"risk:{decision.rule}",
                                decision.detail,
                                failure_code="RISK_DECLINED",
                                failure_message=decision.detail,
                            )
                        else:
                            await self._moves.move(
                                uow,
                                order,
                                S.PENDING,
                                f"risk:{decision.rule}",
                                decision.detail,
                                pending_reason=PendingReason.RISK_REVIEW.value,
                            )
        except CheckoutIdTaken:
            async with self._uows.reader() as uow:
                existing = await uow.repo.get_event(cmd.checkout_id)
            if existing is not None and existing.idempotency_key == key:
                if existing.fingerprint is not None and bytes(existing.fingerprint) != fingerprint:
                    # The first attempt never finished, so the key has no stored answer to
                    # compare with; the checkout itself remembers what was asked.
                    raise Unprocessable(
                        "IDEMPOTENCY_KEY_REUSED",
                        "this idempotency-key was already used with a different request; use a new key",
                    ) from None
                return None
            raise AlreadyExists(
                "CHECKOUT_ALREADY_EXISTS",
                f"checkout {cmd.checkout_id!r} already exists",
                {"checkout_id": cmd.checkout_id},
            ) from None
        except PaymentOrderIdTaken:
            async with self._uows.reader() as uow:
                taken = await uow.repo.existing_order_ids([o.payment_order_id for o in cmd.orders])
            raise AlreadyExists(
                "PAYMENT_ORDER_ALREADY_EXISTS",
                f"payment order {', '.join(taken) or '?'} already exists",
                {"payment_order_id": ",".join(taken)},
            ) from None
        if not approved:
            return event, []  # held or declined: nothing to register now
        return event, orders

    # -- PSP registration (resumable) --
    @staticmethod
    def _needs_registration(event: CheckoutRow, order: OrderRow) -> bool:
        state = OrderState(order.state)
        if state not in (S.NOT_STARTED, S.EXECUTING, S.UNKNOWN):
            return False  # held for review, or already decided
        if event.mode == "HOSTED":
            return event.psp_session_id is None
        return order.psp_reference is None

    async def drive(self, checkout_id: str) -> None:
        """Register with the PSP whatever the checkout still needs; safe to repeat."""
        async with self._uows.reader() as uow:
            event = await uow.repo.get_event(checkout_id)
            orders = await uow.repo.orders_of_checkout(checkout_id)
        if event is None:
            return  # nothing stored under this id: nothing to register
        await self._drive(event, orders, resumed=True)

    async def _drive(
        self, event: CheckoutRow, orders: Sequence[OrderRow], *, resumed: bool = False
    ) -> list[OrderRow]:
        """Register what the checkout still needs; return the rows of the orders whose outcome was
        recorded by a one-statement move (direct mode), as they now stand."""
        pending = [o for o in orders if self._needs_registration(event, o)]
        if not pending:
            return []
        if event.mode == "HOSTED":
            await self._register_session(event, pending)
            return []
        if resumed and await self._settled_by_lookup(event, pending):
            return []
        return await self.register_intent(event, orders, pending)

    async def _settled_by_lookup(self, event: CheckoutRow, pending: Sequence[OrderRow]) -> bool:
        """Before a create is sent again: the checkout's PaymentIntent an earlier attempt may have made, found
        by our metadata, decides the orders instead (True); True too when the PSP cannot be asked now (nothing
        is sent, the janitor asks again); False when the PSP holds none and the create may be sent."""
        since = (
            int(min(o.created_at for o in pending).timestamp()) - 300
        )  # our clock and the PSP's may differ
        try:
            pi = await self._psp.find_payment_intent(event.checkout_id, since)
        except PspError as exc:
            log.warning(
                "PSP unavailable; create not resent", checkout_id=event.checkout_id, error=exc.message
            )
            return True
        if pi is None:
            return False
        log.info("resumed checkout found at the PSP", checkout_id=event.checkout_id, payment_intent=pi.id)
        outcome = outcome_of(pi, direct_mode=True)
        async with self._uows.transaction() as uow:
            for locked in await uow.repo.orders_by_ids(
                [o.payment_order_id for o in pending], for_update=True
            ):
                await self._moves.apply_outcome(uow, locked, outcome, "psp:found")
        return True

    async def _register_session(self, event: CheckoutRow, orders: Sequence[OrderRow]) -> None:
        try:
            session = await self._psp.create_checkout_session(
                checkout_id=event.checkout_id,
                currency=event.currency,
                items=[
                    LineItem(o.payment_order_id, o.seller_account, o.amount_minor, o.line_items or [])
                    for o in orders
                ],
                success_url=event.success_url,
                cancel_url=event.cancel_url,
                customer_email=(event.buyer_info or {}).get("email") or None,
                idempotency_key=f"{event.checkout_id}:session",
            )
        except PspError as exc:
            await self._record_failure(event, [o.payment_order_id for o in orders], exc, "psp:create_session")
            return
        async with self._uows.transaction() as uow:
            await uow.repo.update_event(
                event.checkout_id, psp_session_id=session.session_id, hosted_page_url=session.url
            )
            for order in await uow.repo.orders_by_ids([o.payment_order_id for o in orders], for_update=True):
                fields = {"psp_reference": session.payment_intent_id} if session.payment_intent_id else {}
                await self._moves.move(
                    uow, order, S.EXECUTING, "psp:session_created", session.session_id, **fields
                )

    async def register_intent(
        self, event: CheckoutRow, orders: Sequence[OrderRow], pending: Sequence[OrderRow]
    ) -> list[OrderRow]:
        """Create and confirm the checkout's one PaymentIntent and record its outcome on each of the
        ``pending`` orders; return the rows of those whose outcome was recorded in one statement, or
        found recorded already by the PSP's webhook, as they now stand (the caller reads the others).

        The PaymentIntent is for all ``orders`` of the checkout whatever ``pending`` is: risk holds or
        approves a checkout as a whole, so every order of a direct checkout belongs to its one
        charge, and a retry under the same key always sends the same amount (a partly recorded
        outcome, say after a crash, then replays instead of meeting an idempotency error)."""
        try:
            pi = await self._psp.create_payment_intent(
                checkout_id=event.checkout_id,
                # Sorted: the orders come in request order or in key order, and the key's
                # parameters must be the same on every attempt.
                payment_order_ids=sorted(o.payment_order_id for o in orders),
                amount_minor=sum(o.amount_minor for o in orders),
                currency=event.currency,
                payment_method=event.payment_method,
                return_url=self._settings.return_url,
                idempotency_key=f"{event.checkout_id}:intent",
            )
        except PspError as exc:
            await self._record_failure(event, [o.payment_order_id for o in pending], exc, "psp:create_intent")
            return []
        outcome = outcome_of(pi, direct_mode=True)
        fields, detail = outcome_change(outcome)
        # Each order moves on its own statement (history row and, for SUCCESS, settlement event
        # included); they run side by side, as the per-order charges did.
        moved = await asyncio.gather(
            *(self._moves.move_at_once(o, outcome.state, "psp:confirm", detail, **fields) for o in pending)
        )
        rows = [row for row in moved if row is not None]
        rest = [o for o, row in zip(pending, moved, strict=True) if row is None]
        if rest and outcome.state is S.SUCCESS:
            # Usually the PSP's webhook recorded this very success first: then there is nothing to do.
            async with self._uows.statement() as uow:
                for order in list(rest):
                    now = await uow.repo.get_order_plain(order.payment_order_id)
                    if (
                        now is not None
                        and now.state == S.SUCCESS
                        and now.psp_reference == outcome.psp_reference
                    ):
                        rows.append(now)  # as it stands, committed: the answer needs no further read
                        rest.remove(order)
        if rest:
            async with self._uows.transaction() as uow:
                for locked in await uow.repo.orders_by_ids(
                    [o.payment_order_id for o in rest], for_update=True
                ):
                    await self._moves.apply_outcome(uow, locked, outcome, "psp:confirm")
        return rows

    async def _record_failure(
        self, event: CheckoutRow, order_ids: Sequence[str], exc: PspError, cause: str
    ) -> None:
        async with self._uows.transaction() as uow:
            for order in await uow.repo.orders_by_ids(order_ids, for_update=True):
                if isinstance(exc, PspUnavailable):
                    # We do not know whether the PSP acted: never FAILED, the janitor asks again.
                    await self._moves.move(uow, order, S.UNKNOWN, cause, exc.message)
                elif isinstance(exc, PspDeclined) and exc.payment_intent:
                    outcome = outcome_of(exc.payment_intent, direct_mode=event.mode == "DIRECT")
                    if outcome.state is not S.FAILED:
                        outcome = PspOutcome(S.FAILED, outcome.psp_reference, exc.code, exc.message)
                    else:
                        outcome = PspOutcome(
                            S.FAILED,
                            outcome.psp_reference,
                            exc.code or outcome.failure_code,
                            exc.message or outcome.failure_message,
                        )
                    await self._moves.apply_outcome(uow, order, outcome, cause)
                else:
                    kind = "declined" if isinstance(exc, PspDeclined) else "rejected"
                    log.warning(
                        f"PSP {kind} the request", payment_order_id=order.payment_order_id, code=exc.code
                    )
                    await self._moves.move(
                        uow,
                        order,
                        S.FAILED,
                        cause,
                        exc.message,
                        failure_code=exc.code,
                        failure_message=exc.message,
                    )
