"""RedriveSettlement: emit a captured order's settlement event again when its wallet or ledger half is
missing (reconciliation's SETTLEMENT_NOT_BOOKED).

The event is the one the order's SUCCESS wrote (same payload, the commission fixed then), so the settlement
consumer applies it under the same keys (``settle:order:<id>``, or its current attempt's): a half applied
already replays its stored answer and changes nothing, and both flags are set once both halves are in.
"""

from __future__ import annotations

from payment_svc.domain import CAPTURED, OrderState
from payment_svc.rows import OrderRow
from payment_svc.usecases import queries
from payment_svc.usecases.deps import UseCase
from svckit.errors import FailedPrecondition
from svckit.logging import get_logger

log = get_logger(__name__)


class Redrive(UseCase):
    async def redrive_settlement(self, payment_order_id: str) -> tuple[OrderRow, bool]:
        """The order and whether its settlement event was emitted again (False: both halves are in)."""
        async with self._uows.transaction() as uow:
            # Locked, so a settlement landing now is either seen here (flags set) or replays our keys.
            order = await uow.repo.get_order(payment_order_id, for_update=True) if payment_order_id else None
            if order is None:
                order = await queries.get_order(
                    uow, payment_order_id
                )  # MISSING_FIELD, PAYMENT_ORDER_NOT_FOUND
            if OrderState(order.state) not in CAPTURED:
                raise FailedPrecondition(
                    "ORDER_NOT_CAPTURED",
                    f"order {payment_order_id} is {order.state}: it has no settlement to re-drive",
                    {"state": order.state},
                )
            if order.wallet_updated and order.ledger_updated:
                return order, False
            await self._settlement.order_succeeded(uow, order, order.commission_minor)
        log.info(
            "settlement re-driven",
            payment_order_id=payment_order_id,
            wallet_updated=order.wallet_updated,
            ledger_updated=order.ledger_updated,
        )
        return order, True
