"""ReviewPaymentOrder: an operator approves or declines the orders risk held for review."""

from __future__ import annotations

from payment_svc.domain import OrderState, PendingReason
from payment_svc.rows import OrderRow
from payment_svc.usecases import queries
from payment_svc.usecases.checkout import Checkout
from payment_svc.usecases.deps import Deps, UseCase
from svckit.errors import FailedPrecondition

S = OrderState


class Review(UseCase):
    def __init__(self, deps: Deps, checkout: Checkout) -> None:
        super().__init__(deps)
        self._checkout = checkout

    async def review(self, payment_order_id: str, approve: bool, reviewer: str, note: str) -> OrderRow:
        async with self._uows.transaction() as uow:
            order = await queries.get_order(uow, payment_order_id)
            held = [
                o
                for o in await uow.repo.orders_of_checkout(order.checkout_id, for_update=True)
                if o.state == S.PENDING.value and o.pending_reason == PendingReason.RISK_REVIEW.value
            ]
            if not any(o.payment_order_id == payment_order_id for o in held):
                raise FailedPrecondition(
                    "ORDER_NOT_IN_REVIEW",
                    f"order {payment_order_id} is not waiting for review",
                    {"state": order.state},
                )
            detail = f"{reviewer or 'operator'}: {note}".strip(": ")
            for o in held:
                if approve:
                    await self._moves.move(uow, o, S.EXECUTING, "review:approve", detail)
                else:
                    await self._moves.move(
                        uow,
                        o,
                        S.FAILED,
                        "review:decline",
                        detail,
                        failure_code="RISK_DECLINED",
                        failure_message=note or "declined by risk review",
                    )
        if approve:
            await self._checkout.drive(order.checkout_id)
        async with self._uows.reader() as uow:
            return await queries.get_order(uow, payment_order_id)
