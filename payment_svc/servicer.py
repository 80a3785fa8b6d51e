"""gRPC transport of payments.v1.PaymentService."""

from __future__ import annotations

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy.ext.asyncio import AsyncEngine

from payment_svc.service import OrderState, PaymentOrder, PaymentService
from svckit.gen.payments.v1 import payment_service_pb2 as pb
from svckit.gen.payments.v1 import payment_service_pb2_grpc as pb_grpc
from svckit.idempotency import IdempotencyStore

STATE_TO_PB = {
    state: pb.PaymentOrderState.Value(f"PAYMENT_ORDER_STATE_{state.value}") for state in OrderState
}


def _ts(dt) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(dt)
    return ts


def order_to_pb(order: PaymentOrder) -> pb.PaymentOrder:
    return pb.PaymentOrder(
        payment_order_id=order.payment_order_id,
        checkout_id=order.checkout_id,
        seller_account=order.seller_account,
        amount_minor=order.amount_minor,
        currency=order.currency,
        state=STATE_TO_PB[order.state],
        create_time=_ts(order.created_at),
        update_time=_ts(order.updated_at),
    )


class PaymentServicer(pb_grpc.PaymentServiceServicer):
    def __init__(self, service: PaymentService, engine: AsyncEngine, idempotency: IdempotencyStore) -> None:
        self._service = service
        self._engine = engine
        self._idempotency = idempotency

    async def GetPaymentOrder(self, request: pb.GetPaymentOrderRequest, context: grpc.aio.ServicerContext):
        async with self._engine.connect() as conn:
            order = await self._service.get_order(conn, request.payment_order_id)
        return pb.GetPaymentOrderResponse(payment_order=order_to_pb(order))
