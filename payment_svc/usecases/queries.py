"""Reads: an order, a checkout with its orders, an order's history."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from payment_svc import repository as repo
from payment_svc.usecases.commands import CheckoutView
from svckit.errors import InvalidArgument, NotFound


async def get_order(conn: AsyncConnection, payment_order_id: str) -> Any:
    if not payment_order_id:
        raise InvalidArgument("MISSING_FIELD", "payment_order_id is required", field="payment_order_id")
    row = await repo.get_order(conn, payment_order_id)
    if row is None:
        raise NotFound(
            "PAYMENT_ORDER_NOT_FOUND",
            f"no payment order {payment_order_id!r}",
            {"payment_order_id": payment_order_id},
        )
    return row


async def get_checkout(conn: AsyncConnection, checkout_id: str) -> CheckoutView:
    event = await repo.get_event(conn, checkout_id)
    if event is None:
        raise NotFound("CHECKOUT_NOT_FOUND", f"no checkout {checkout_id!r}", {"checkout_id": checkout_id})
    return CheckoutView(event, await repo.orders_of_checkout(conn, checkout_id))


async def get_checkout_by_payment_intent(conn: AsyncConnection, payment_intent_id: str) -> CheckoutView:
    if not payment_intent_id:
        raise InvalidArgument("MISSING_FIELD", "payment_intent_id is required", field="payment_intent_id")
    orders = await repo.orders_by_psp_reference(conn, payment_intent_id)
    if not orders:
        raise NotFound(
            "CHECKOUT_NOT_FOUND",
            f"no checkout paid by {payment_intent_id!r}",
            {"payment_intent_id": payment_intent_id},
        )
    return await get_checkout(conn, orders[0].checkout_id)


async def history(conn: AsyncConnection, payment_order_id: str) -> list[Any]:
    await get_order(conn, payment_order_id)
    return await repo.history(conn, payment_order_id)
