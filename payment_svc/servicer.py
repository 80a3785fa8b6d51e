"""gRPC transport of payments.v1.PaymentService: translate messages, hold idempotency keys, call the service."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TypeVar, cast

import grpc
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy.ext.asyncio import AsyncConnection

from payment_svc.domain import OrderState
from payment_svc.psp_events import ACCOUNT_EVENTS, PAYOUT_EVENTS, handles_event_type
from payment_svc.rows import DisputeRow, OrderRow, RefundRow
from payment_svc.service import PaymentService
from payment_svc.usecases.commands import (
    Buyer,
    CheckoutView,
    CreatePayment,
    LineItemInput,
    OrderInput,
)
from payment_svc.usecases.queries import OrderFilter
from svckit.context import REPLAYED_METADATA, idempotency_key_var
from svckit.errors import InvalidArgument
from svckit.gen.payments.v1 import payment_service_pb2 as pb
from svckit.gen.payments.v1 import payment_service_pb2_grpc as pb_grpc
from svckit.idempotency import IdempotencyStore
from svckit.protobuf import time_window, timestamp

# The stubs type Value() as a plain int; each number is one of the enum's.
STATE_TO_PB = {
    state: cast(pb.PaymentOrderState, pb.PaymentOrderState.Value(f"PAYMENT_ORDER_STATE_{state.value}"))
    for state in OrderState
}
STATE_NAME_TO_PB = {state.value: number for state, number in STATE_TO_PB.items()}
REFUND_STATE_TO_PB = {
    "PENDING": pb.REFUND_STATE_PENDING,
    "SUCCEEDED": pb.REFUND_STATE_SUCCEEDED,
    "FAILED": pb.REFUND_STATE_FAILED,
}
PB_TO_STATE = {number: state for state, number in STATE_TO_PB.items()}
PB_TO_REFUND_STATE = {number: state for state, number in REFUND_STATE_TO_PB.items()}
R = TypeVar("R", bound=Message)


def order_to_pb(row: OrderRow) -> pb.PaymentOrder:
    return pb.PaymentOrder(
        payment_order_id=row.payment_order_id,
        checkout_id=row.checkout_id,
        seller_account=row.seller_account,
        amount_minor=row.amount_minor,
        currency=row.currency,
        state=STATE_TO_PB[OrderState(row.state)],
        create_time=timestamp(row.created_at),
        update_time=timestamp(row.updated_at),
        psp_reference=row.psp_reference or "",
        failure_code=row.failure_code or "",
        failure_message=row.failure_message or "",
        next_action_url=row.next_action_url or "",
        commission_minor=row.commission_minor,
        refunded_minor=row.refunded_minor,
        wallet_updated=row.wallet_updated,
        ledger_updated=row.ledger_updated,
        line_items=[pb.LineItem(name=li["name"], quantity=li["quantity"]) for li in row.line_items or ()],
    )


def checkout_to_pb(view: CheckoutView) -> pb.PaymentEvent:
    event = view.event
    buyer = event.buyer_info or {}
    return pb.PaymentEvent(
        checkout_id=event.checkout_id,
        buyer=pb.BuyerInfo(
            buyer_id=buyer.get("buyer_id", event.buyer_id),
            email=buyer.get("email", ""),
            name=buyer.get("name", ""),
            country=buyer.get("country", ""),
        ),
        mode=pb.PAYMENT_MODE_DIRECT if event.mode == "DIRECT" else pb.PAYMENT_MODE_HOSTED,
        payment_orders=[order_to_pb(o) for o in view.orders],
        hosted_page_url=event.hosted_page_url or "",
        create_time=timestamp(event.created_at),
        success_url=event.success_url or "",
        cancel_url=event.cancel_url or "",
        risk_verdict=event.risk_verdict,
        risk_rule=event.risk_rule,
        disputes=[dispute_to_pb(d) for d in view.disputes],
    )


def dispute_to_pb(row: DisputeRow) -> pb.Dispute:
    msg = pb.Dispute(
        dispute_id=row.dispute_id,
        payment_intent_id=row.payment_intent_id,
        amount_minor=row.amount_minor,
        currency=row.currency,
        status=row.status,
        reason=row.reason,
        create_time=timestamp(row.created_at),
        update_time=timestamp(row.updated_at),
    )
    if row.evidence_due_at is not None:
        msg.evidence_due_time.CopyFrom(timestamp(row.evidence_due_at))
    return msg


def refund_to_pb(row: RefundRow) -> pb.Refund:
    return pb.Refund(
        refund_id=row.refund_id,
        payment_order_id=row.payment_order_id,
        amount_minor=row.amount_minor,
        currency=row.currency,
        state=REFUND_STATE_TO_PB[row.state],
        psp_reference=row.psp_reference or "",
        create_time=timestamp(row.created_at),
    )


def order_filter(request: pb.ListPaymentOrdersRequest) -> OrderFilter:
    states = []
    for number in request.states:
        if number not in PB_TO_STATE:
            raise InvalidArgument(
                "INVALID_FILTER", f"states: {number} is not a payment order state", field="states"
            )
        states.append(PB_TO_STATE[number])
    return OrderFilter(
        checkout_id=request.checkout_id,
        seller_account=request.seller_account,
        buyer_id=request.buyer_id,
        states=tuple(states),
        created_from=_bound(request, "create_time_from"),
        created_before=_bound(request, "create_time_before"),
    )


def _bound(request: pb.ListPaymentOrdersRequest, name: str) -> datetime | None:
    """A set Timestamp field as an aware datetime; None when unset (no bound)."""
    if not request.HasField(name):
        return None
    try:
        return cast(Timestamp, getattr(request, name)).ToDatetime(tzinfo=UTC)
    except (ValueError, OverflowError):  # seconds outside 0001-9999, or nanos out of range
        raise InvalidArgument("INVALID_FILTER", f"{name} is not a valid time", field=name) from None


def create_command(request: pb.CreatePaymentRequest) -> CreatePayment:
    return CreatePayment(
        checkout_id=request.checkout_id,
        buyer=Buyer(request.buyer.buyer_id, request.buyer.email, request.buyer.name, request.buyer.country),
        orders=tuple(
            OrderInput(
                o.payment_order_id,
                o.seller_account,
                o.amount_minor,
                o.currency,
                tuple(LineItemInput(li.name, li.quantity) for li in o.line_items),
            )
            for o in request.payment_orders
        ),
        success_url=request.success_url,
        cancel_url=request.cancel_url,
        payment_method=request.payment_method,
    )


class PaymentServicer(pb_grpc.PaymentServiceServicer):
    def __init__(
        self,
        service: PaymentService,
        idempotency: IdempotencyStore,
        verify_psp_event: Callable[[bytes, str], None],
    ) -> None:
        self._service = service
        self._verify_psp_event = verify_psp_event
        self._idempotency = idempotency

    async def _long_idempotent(
        self,
        context: grpc.aio.ServicerContext,
        scope: str,
        request: Message,
        response_type: type[R],
        operate: Callable[[bytes, str], Awaitable[R]],
    ) -> R:
        """Run a multi-step operation (it calls the PSP) once per key; replay its stored answer after."""
        async with self._idempotency.claim(scope, idempotency_key_var.get(), request) as claim:
            replay = claim.replay(response_type)
            if replay is not None:
                await context.send_initial_metadata(((REPLAYED_METADATA, "true"),))
                return replay
            return await claim.finish(await operate(claim.fingerprint, claim.key))

    async def CreatePayment(self, request: pb.CreatePaymentRequest, context: grpc.aio.ServicerContext):
        async def operate(fingerprint: bytes, key: str) -> pb.CreatePaymentResponse:
            view = await self._service.create_payment(create_command(request), key, fingerprint)
            return pb.CreatePaymentResponse(payment_event=checkout_to_pb(view))

        return await self._long_idempotent(
            context, "payments.CreatePayment", request, pb.CreatePaymentResponse, operate
        )

    async def GetPaymentOrder(self, request: pb.GetPaymentOrderRequest, context: grpc.aio.ServicerContext):
        order = await self._service.get_order(request.payment_order_id)
        return pb.GetPaymentOrderResponse(payment_order=order_to_pb(order))

    async def RecheckPaymentOrder(
        self, request: pb.RecheckPaymentOrderRequest, context: grpc.aio.ServicerContext
    ):
        await self._service.recheck_order(request.payment_order_id)
        order = await self._service.get_order(request.payment_order_id)
        return pb.RecheckPaymentOrderResponse(payment_order=order_to_pb(order))

    async def RedriveSettlement(
        self, request: pb.RedriveSettlementRequest, context: grpc.aio.ServicerContext
    ):
        order, redriven = await self._service.redrive_settlement(request.payment_order_id)
        return pb.RedriveSettlementResponse(payment_order=order_to_pb(order), redriven=redriven)

    async def GetCheckout(self, request: pb.GetCheckoutRequest, context: grpc.aio.ServicerContext):
        view = await self._service.get_checkout(request.checkout_id)
        return pb.GetCheckoutResponse(payment_event=checkout_to_pb(view))

    async def GetCheckoutByPaymentIntent(
        self, request: pb.GetCheckoutByPaymentIntentRequest, context: grpc.aio.ServicerContext
    ):
        view = await self._service.get_checkout_by_payment_intent(request.payment_intent_id)
        return pb.GetCheckoutByPaymentIntentResponse(payment_event=checkout_to_pb(view))

    async def BatchGetCheckoutOrders(
        self, request: pb.BatchGetCheckoutOrdersRequest, context: grpc.aio.ServicerContext
    ):
        rows = await self._service.orders_of_checkouts(list(request.checkout_ids))
        return pb.BatchGetCheckoutOrdersResponse(payment_orders=[order_to_pb(r) for r in rows])

    async def BatchGetCheckoutOrderColumns(
        self, request: pb.BatchGetCheckoutOrderColumnsRequest, context: grpc.aio.ServicerContext
    ):
        cols = await self._service.order_columns_of_checkouts(list(request.checkout_ids))
        # Whole lists into repeated fields: one copy each in protobuf's C code, no message per order.
        return pb.BatchGetCheckoutOrderColumnsResponse(
            checkout_ids=cols.checkout_ids,
            payment_order_ids=cols.payment_order_ids,
            psp_references=cols.psp_references,
            amounts_minor=cols.amounts_minor,
            currencies=cols.currencies,
            states=[STATE_NAME_TO_PB[s] for s in cols.states],
            create_times_unix_micros=cols.create_times_unix_micros,
            wallet_updated=cols.wallet_updated,
            ledger_updated=cols.ledger_updated,
        )

    async def ListPaymentOrderHistory(
        self, request: pb.ListPaymentOrderHistoryRequest, context: grpc.aio.ServicerContext
    ):
        rows = await self._service.history(request.payment_order_id)
        unspecified = pb.PAYMENT_ORDER_STATE_UNSPECIFIED
        return pb.ListPaymentOrderHistoryResponse(
            transitions=[
                pb.OrderTransition(
                    from_state=STATE_TO_PB[OrderState(r.from_state)] if r.from_state else unspecified,
                    to_state=STATE_TO_PB[OrderState(r.to_state)],
                    cause=r.cause,
                    detail=r.detail,
                    create_time=timestamp(r.created_at),
                )
                for r in rows
            ]
        )

    async def ListPaymentOrders(
        self, request: pb.ListPaymentOrdersRequest, context: grpc.aio.ServicerContext
    ):
        filters = order_filter(request)
        rows, token = await self._service.list_orders(filters, request.page_size, request.page_token)
        return pb.ListPaymentOrdersResponse(
            payment_orders=[order_to_pb(r) for r in rows], next_page_token=token
        )

    async def GetPaymentStats(self, request: pb.GetPaymentStatsRequest, context: grpc.aio.ServicerContext):
        stats = await self._service.order_stats(request.window_minutes, request.bucket_minutes)
        return pb.GetPaymentStatsResponse(
            buckets=[
                pb.PaymentStatsBucket(start_time=timestamp(start), created=c, succeeded=ok, failed=f)
                for start, c, ok, f in stats.buckets
            ],
            declines=[pb.DeclineCount(code=code, count=n) for code, n in stats.declines],
            window_start_time=timestamp(stats.since),
        )

    async def ListRefunds(self, request: pb.ListRefundsRequest, context: grpc.aio.ServicerContext):
        states = []
        for number in request.states:
            if number not in PB_TO_REFUND_STATE:
                raise InvalidArgument(
                    "INVALID_FILTER", f"states: {number} is not a refund state", field="states"
                )
            states.append(PB_TO_REFUND_STATE[number])
        rows, token = await self._service.list_refunds(
            request.payment_order_id,
            request.page_size,
            request.page_token,
            time_window(request, "create_time_from", "create_time_before"),
            states,
            request.refund_id,
        )
        return pb.ListRefundsResponse(refunds=[refund_to_pb(r) for r in rows], next_page_token=token)

    async def HandlePspEvent(self, request: pb.HandlePspEventRequest, context: grpc.aio.ServicerContext):
        # First, before a byte of the payload is read: whoever can reach this service must not be
        # able to forge an event (PERMISSION_DENIED, INVALID_SIGNATURE).
        self._verify_psp_event(request.payload, request.stripe_signature)
        if not request.event_id:
            raise InvalidArgument("MISSING_FIELD", "event_id is required", field="event_id")
        if request.event_type and not handles_event_type(request.event_type):
            # Nothing to apply and nothing to remember: a redelivery gets the same empty answer.
            return pb.HandlePspEventResponse(applied=False)
        if not request.event_type or request.event_type in PAYOUT_EVENTS | ACCOUNT_EVENTS:
            # A payout's is recorded in the pay-out inbox (once per event id: a redelivery records
            # nothing new) and applied by its worker: acknowledged once durable. An account's is one
            # conditional statement. Neither needs an idempotency record of its own.
            applied = await self._service.accept_payout_event(
                request.event_id, request.event_type, request.payload
            )
            if applied is not None:
                return pb.HandlePspEventResponse(accepted=True, applied=applied)
        quick = await self._service.apply_event_at_once(request.event_type, request.payload)
        if quick is not None:
            return pb.HandlePspEventResponse(applied=bool(quick), payment_order_ids=quick)

        async def work(conn: AsyncConnection) -> pb.HandlePspEventResponse:
            changed = await self._service.handle_psp_event(conn, request.event_type, request.payload)
            return pb.HandlePspEventResponse(applied=bool(changed), payment_order_ids=changed)

        # The PSP's event id is the idempotency key: a redelivered event is a replay. Only the id and type
        # are its fingerprint: each delivery is signed afresh, and its bytes may differ too (Stripe's
        # ``pending_webhooks`` changes between deliveries), which must not turn a redelivery into a refusal.
        identity = pb.HandlePspEventRequest(event_id=request.event_id, event_type=request.event_type)
        response, replayed = await self._idempotency.run(
            "payments.HandlePspEvent", request.event_id, identity, pb.HandlePspEventResponse, work
        )
        if replayed:
            await context.send_initial_metadata(((REPLAYED_METADATA, "true"),))
        return response

    async def ReviewPaymentOrder(
        self, request: pb.ReviewPaymentOrderRequest, context: grpc.aio.ServicerContext
    ):
        if request.decision == pb.REVIEW_DECISION_UNSPECIFIED:
            raise InvalidArgument("MISSING_FIELD", "decision must be APPROVE or DECLINE", field="decision")

        async def operate(_fp: bytes, _key: str) -> pb.ReviewPaymentOrderResponse:
            order = await self._service.review(
                request.payment_order_id,
                request.decision == pb.REVIEW_DECISION_APPROVE,
                request.reviewer,
                request.note,
            )
            return pb.ReviewPaymentOrderResponse(payment_order=order_to_pb(order))

        return await self._long_idempotent(
            context, "payments.ReviewPaymentOrder", request, pb.ReviewPaymentOrderResponse, operate
        )

    async def CreateRefund(self, request: pb.CreateRefundRequest, context: grpc.aio.ServicerContext):
        async def operate(_fp: bytes, key: str) -> pb.CreateRefundResponse:
            refund, order = await self._service.create_refund(
                request.payment_order_id, request.amount_minor, request.reason, key
            )
            return pb.CreateRefundResponse(refund=refund_to_pb(refund), payment_order=order_to_pb(order))

        return await self._long_idempotent(
            context, "payments.CreateRefund", request, pb.CreateRefundResponse, operate
        )
