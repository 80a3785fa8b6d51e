"""Reads: an order, a checkout with its orders, an order's history. Each takes the caller's unit of work
(a reader, usually)."""

from __future__ import annotations

from payment_svc.rows import OrderRow, TransitionRow
from payment_svc.uow import UnitOfWork
from payment_svc.usecases.commands import CheckoutView
from svckit.errors import InvalidArgument, NotFound


async def get_order(uow: UnitOfWork, payment_order_id: str) -> OrderRow:
    if not payment_order_id:
        raise InvalidArgument("MISSING_FIELD", "payment_order_id is required", field="payment_order_id")
    row = await uow.repo.get_order(payment_order_id)
    if row is None:
        raise NotFound(
            "PAYMENT_ORDER_NOT_FOUND",
            f"no payment order {payment_order_id!r}",
            {"payment_order_id": payment_order_id},
        )
    return row


async def get_checkout(uow: UnitOfWork, checkout_id: str) -> CheckoutView:
    event = await uow.repo.get_event(checkout_id)
    if event is None:
        raise NotFound("CHECKOUT_NOT_FOUND", f"no checkout {checkout_id!r}", {"checkout_id": checkout_id})
    return CheckoutView(event, await uow.repo.orders_of_checkout(checkout_id))


async def history(uow: UnitOfWork, payment_order_id: str) -> list[TransitionRow]:
    await get_order(uow, payment_order_id)
    return await uow.repo.history(payment_order_id)
