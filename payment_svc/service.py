"""The payment service the servicer and the tools call: it builds the use cases of
:mod:`payment_svc.usecases` over one set of dependencies and delegates to them (no rule lives here).
Reads and the PSP event path are given their unit of work here, so the transport never holds a
connection."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from payment_svc.config import PaymentSettings
from payment_svc.payouts.service import Payouts
from payment_svc.psp import PspPort
from payment_svc.risk import RiskProvider
from payment_svc.rows import OrderColumns, OrderRow, RefundRow, TransitionRow
from payment_svc.uow import PgUnitsOfWork
from payment_svc.usecases import queries
from payment_svc.usecases.checkout import Checkout
from payment_svc.usecases.commands import CheckoutView, CreatePayment
from payment_svc.usecases.deps import Deps
from payment_svc.usecases.events import PspEvents
from payment_svc.usecases.janitor import Janitor
from payment_svc.usecases.redrive import Redrive
from payment_svc.usecases.refunds import Refunds
from payment_svc.usecases.review import Review
from payment_svc.usecases.transitions import SettlementSink, Transitions


class PaymentService:
    def __init__(
        self,
        uows: PgUnitsOfWork,
        psp: PspPort,
        risk: RiskProvider,
        settings: PaymentSettings,
        settlement: SettlementSink,
        payouts: Payouts | None = None,
    ) -> None:
        self._psp = psp
        self._uows = uows
        self.payouts = payouts
        deps = Deps(
            uows=uows,
            psp=psp,
            risk=risk,
            settings=settings,
            settlement=settlement,
            moves=Transitions(settings, settlement, uows),
        )
        self.checkout = Checkout(deps)
        self.refunds = Refunds(deps)
        self.events = PspEvents(deps, self.refunds, payouts.accept_psp_event if payouts else None)
        self.reviews = Review(deps, self.checkout)
        self.janitor = Janitor(deps, self.checkout, self.refunds)
        self.redrive = Redrive(deps)

    async def close(self) -> None:
        if self.payouts is not None:
            await self.payouts.close()
        await self._psp.close()
        await self._uows.close()

    # -- reads
    async def get_order(self, payment_order_id: str) -> OrderRow:
        async with self._uows.reader() as uow:
            return await queries.get_order(uow, payment_order_id)

    async def get_checkout(self, checkout_id: str) -> CheckoutView:
        async with self._uows.reader() as uow:
            return await queries.get_checkout(uow, checkout_id)

    async def get_checkout_by_payment_intent(self, payment_intent_id: str) -> CheckoutView:
        async with self._uows.reader() as uow:
            return await queries.get_checkout_by_payment_intent(uow, payment_intent_id)

    async def orders_of_checkouts(self, checkout_ids: Sequence[str]) -> list[OrderRow]:
        async with self._uows.reader() as uow:
            return await queries.orders_of_checkouts(uow, checkout_ids)

    async def order_columns_of_checkouts(self, checkout_ids: Sequence[str]) -> OrderColumns:
        async with self._uows.reader() as uow:
            return await queries.order_columns_of_checkouts(uow, checkout_ids)

    async def history(self, payment_order_id: str) -> list[TransitionRow]:
        async with self._uows.reader() as uow:
            return await queries.history(uow, payment_order_id)

    async def list_orders(
        self, filters: queries.OrderFilter, page_size: int, page_token: str
    ) -> tuple[list[OrderRow], str]:
        async with self._uows.reader() as uow:
            return await queries.list_orders(uow, filters, page_size, page_token)

    async def order_stats(self, window_minutes: int, bucket_minutes: int) -> queries.OrderStats:
        async with self._uows.reader() as uow:
            return await queries.order_stats(uow, window_minutes, bucket_minutes, datetime.now(UTC))

    async def list_refunds(
        self,
        payment_order_id: str,
        page_size: int,
        page_token: str,
        window: tuple[datetime, datetime] | None = None,
        states: Sequence[str] = (),
        refund_id: str = "",
    ) -> tuple[list[RefundRow], str]:
        async with self._uows.reader() as uow:
            if window is None and not states and not refund_id:
                return await queries.list_refunds(uow, payment_order_id, page_size, page_token)
            return await queries.list_all_refunds(
                uow, payment_order_id, window, states, refund_id, page_size, page_token
            )

    # -- use cases
    async def create_payment(
        self, cmd: CreatePayment, idempotency_key: str, fingerprint: bytes
    ) -> CheckoutView:
        return await self.checkout.create_payment(cmd, idempotency_key, fingerprint)

    async def drive(self, checkout_id: str) -> None:
        await self.checkout.drive(checkout_id)

    async def accept_payout_event(self, event_id: str, event_type: str, payload: bytes) -> bool | None:
        return await self.events.accept_payout_event(event_id, event_type, payload)

    async def apply_event_at_once(self, event_type: str, payload: bytes) -> list[str] | None:
        return await self.events.apply_event_at_once(event_type, payload)

    async def handle_psp_event(self, conn: AsyncConnection, event_type: str, payload: bytes) -> list[str]:
        """In the transaction of the event's idempotency record (``conn``, owned by the caller)."""
        return await self.events.handle_psp_event(self._uows.joined(conn), event_type, payload)

    async def review(self, payment_order_id: str, approve: bool, reviewer: str, note: str) -> OrderRow:
        return await self.reviews.review(payment_order_id, approve, reviewer, note)

    async def recheck_order(self, payment_order_id: str) -> None:
        await self.janitor.recheck_order(payment_order_id)

    async def redrive_settlement(self, payment_order_id: str) -> tuple[OrderRow, bool]:
        return await self.redrive.redrive_settlement(payment_order_id)

    async def janitor_pass(self) -> int:
        return await self.janitor.janitor_pass()

    async def janitor_forever(self) -> None:
        await self.janitor.janitor_forever()

    async def create_refund(
        self, payment_order_id: str, amount_minor: int, reason: str, idempotency_key: str
    ) -> tuple[RefundRow, OrderRow]:
        return await self.refunds.create_refund(payment_order_id, amount_minor, reason, idempotency_key)
