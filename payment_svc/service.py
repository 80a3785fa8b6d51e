"""Rules of pay-in. Transport-free: plain values in, DomainError out."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from payment_svc import repository
from svckit.errors import InvalidArgument, NotFound


class OrderState(enum.StrEnum):
    NOT_STARTED = "NOT_STARTED"
    EXECUTING = "EXECUTING"
    PENDING = "PENDING"
    SUCCESS = "SUCCESS"
    FAILED = "FAILED"
    UNKNOWN = "UNKNOWN"
    PARTIALLY_REFUNDED = "PARTIALLY_REFUNDED"
    REFUNDED = "REFUNDED"


@dataclass(frozen=True)
class PaymentOrder:
    payment_order_id: str
    checkout_id: str
    seller_account: str
    amount_minor: int
    currency: str
    state: OrderState
    created_at: datetime
    updated_at: datetime


class PaymentService:
    async def get_order(self, conn: AsyncConnection, payment_order_id: str) -> PaymentOrder:
        if not payment_order_id:
            raise InvalidArgument("MISSING_FIELD", "payment_order_id is required", field="payment_order_id")
        row = await repository.get_order(conn, payment_order_id)
        if row is None:
            raise NotFound(
                "PAYMENT_ORDER_NOT_FOUND",
                f"no payment order {payment_order_id!r}",
                {"payment_order_id": payment_order_id},
            )
        return PaymentOrder(
            payment_order_id=row.payment_order_id,
            checkout_id=row.checkout_id,
            seller_account=row.seller_account,
            amount_minor=row.amount_minor,
            currency=row.currency,
            state=OrderState(row.state),
            created_at=row.created_at,
            updated_at=row.updated_at,
        )
