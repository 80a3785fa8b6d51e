"""The payment service the servicer and the tools call: it builds the use cases of
:mod:`payment_svc.usecases` over one set of dependencies and delegates to them (no rule lives here)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from payment_svc.config import PaymentSettings
from payment_svc.payouts.service import Payouts
from payment_svc.psp import PspPort
from payment_svc.risk import RiskProvider
from payment_svc.usecases import queries
from payment_svc.usecases.checkout import Checkout
from payment_svc.usecases.commands import CheckoutView, CreatePayment
from payment_svc.usecases.deps import Deps
from payment_svc.usecases.events import PspEvents
from payment_svc.usecases.janitor import Janitor
from payment_svc.usecases.refunds import Refunds
from payment_svc.usecases.review import Review
from payment_svc.usecases.transitions import SettlementSink, Transitions
from svckit.db import DriverPool, autocommit


class PaymentService:
    def __init__(
        self,
        engine: AsyncEngine,
        psp: PspPort,
        risk: RiskProvider,
        settings: PaymentSettings,
        settlement: SettlementSink,
        driver: DriverPool,
        payouts: Payouts | None = None,
    ) -> None:
        self._psp = psp
        self._driver = driver
        self.payouts = payouts
        deps = Deps(
            engine=engine,
            reader=autocommit(engine),
            driver=driver,
            psp=psp,
            risk=risk,
            settings=settings,
            settlement=settlement,
            moves=Transitions(settings, settlement, driver),
        )
        self.checkout = Checkout(deps)
        self.refunds = Refunds(deps)
        self.events = PspEvents(deps, self.refunds, payouts.apply_psp_event if payouts else None)
        self.reviews = Review(deps, self.checkout)
        self.janitor = Janitor(deps, self.checkout)

    async def close(self) -> None:
        if self.payouts is not None:
            await self.payouts.close()
        await self._psp.close()
        await self._driver.close()

    # -- reads
    async def get_order(self, conn: AsyncConnection, payment_order_id: str) -> Any:
        return await queries.get_order(conn, payment_order_id)

    async def get_checkout(self, conn: AsyncConnection, checkout_id: str) -> CheckoutView:
        return await queries.get_checkout(conn, checkout_id)

    async def history(self, conn: AsyncConnection, payment_order_id: str) -> list[Any]:
        return await queries.history(conn, payment_order_id)

    # -- use cases
    async def create_payment(
        self, cmd: CreatePayment, idempotency_key: str, fingerprint: bytes
    ) -> CheckoutView:
        return await self.checkout.create_payment(cmd, idempotency_key, fingerprint)

    async def drive(self, checkout_id: str) -> None:
        await self.checkout.drive(checkout_id)

    async def apply_event_at_once(self, event_type: str, payload: bytes) -> list[str] | None:
        return await self.events.apply_event_at_once(event_type, payload)

    async def handle_psp_event(self, conn: AsyncConnection, event_type: str, payload: bytes) -> list[str]:
        return await self.events.handle_psp_event(conn, event_type, payload)

    async def review(self, payment_order_id: str, approve: bool, reviewer: str, note: str) -> Any:
        return await self.reviews.review(payment_order_id, approve, reviewer, note)

    async def janitor_pass(self) -> int:
        return await self.janitor.janitor_pass()

    async def janitor_forever(self) -> None:
        await self.janitor.janitor_forever()

    async def create_refund(
        self, payment_order_id: str, amount_minor: int, reason: str, idempotency_key: str
    ) -> tuple[Any, Any]:
        return await self.refunds.create_refund(payment_order_id, amount_minor, reason, idempotency_key)
