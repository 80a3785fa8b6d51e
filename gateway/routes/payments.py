"""Pay-in for checkout clients (scope ``payments``): create a payment, read and list it, refund it."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends, Header, Path, Query, Request, Response
from pydantic import AwareDatetime

from gateway import paging, schemas
from gateway.buyer_pages import status_links
from gateway.guard import bearer_scheme, guarded
from gateway.upstream import call, mark_replayed
from svckit.errors import InvalidArgument
from svckit.gen.payments.v1 import payment_service_pb2 as pb

router = APIRouter(
    prefix="/v1",
    tags=["payments"],
    route_class=guarded("payments"),
    dependencies=[Depends(bearer_scheme)],
    responses={
        401: {"description": "missing, unknown or revoked API key (`UNAUTHENTICATED`)"},
        403: {"description": "the key lacks the `payments` scope (`FORBIDDEN`)"},
        429: {"description": "rate limit exceeded (`RATE_LIMITED`), see `Retry-After`"},
    },
)

IdempotencyKey = Annotated[
    str,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        description="Your unique key for this request; a retry with the same key and body replays the answer.",
    ),
]
OrderId = Annotated[str, Path(pattern=schemas.ID_PATTERN, description="The payment order id.")]
CheckoutId = Annotated[str, Path(pattern=schemas.ID_PATTERN, description="The checkout id.")]


def _deadline(request: Request) -> float:
    return request.app.state.settings.upstream_timeout_seconds


@router.post(
    "/payments",
    status_code=201,
    response_model=schemas.PaymentEventOut,
    summary="Pay a checkout (hosted page, or direct with a payment method token)",
    description=(
        "Stores the checkout and one payment order per seller, runs the risk check and registers the "
        "payment with the PSP. Hosted mode (no `payment_method`): the answer has `hosted_page_url`, where "
        "the buyer pays. Direct mode: each order is charged at once and the answer carries its state."
    ),
    responses={
        400: {
            "description": "invalid body (`INVALID_REQUEST`, `INVALID_AMOUNT`, `AMOUNT_PRECISION_EXCEEDED`, "
            "`AMOUNT_NOT_POSITIVE`, `AMOUNT_TOO_LARGE`, `UNKNOWN_CURRENCY`, `MIXED_CURRENCIES`, "
            "`TOO_MANY_ORDERS`, `DUPLICATE_PAYMENT_ORDER_ID`, `TOO_MANY_LINE_ITEMS`, `INVALID_LINE_ITEM_NAME`, "
            "`INVALID_LINE_ITEM_QUANTITY`); `errors[].field` names it"
        },
        409: {
            "description": "checkout or order id taken by another request, or the idempotency key is in use"
        },
        413: {"description": "body larger than the limit (`PAYLOAD_TOO_LARGE`)"},
        415: {"description": "body is not `application/json` (`UNSUPPORTED_MEDIA_TYPE`)"},
        422: {"description": "idempotency key reused with another body (`IDEMPOTENCY_KEY_REUSED`)"},
    },
)
async def create_payment(
    body: schemas.CreatePaymentBody,
    request: Request,
    response: Response,
    idempotency_key: IdempotencyKey,
) -> schemas.PaymentEventOut:
    # The order limits are the payment service's (PAYMENT_MAX_*): its refusal comes back as the problem.
    status_page = status_links(request).url(request, body.checkout_id)
    message = schemas.create_payment_request(body, status_page)
    reply, replayed = await call(
        request.app.state.upstreams.payment.CreatePayment, message, _deadline(request)
    )
    mark_replayed(response, replayed)
    return schemas.event_out(reply.payment_event, status_page)


@router.get(
    "/payments",
    response_model=schemas.PaymentOrderListOut,
    summary="List payment orders, newest first, with filters",
    description=(
        "Orders ordered by creation time, newest first (orders of one checkout, created together, by id), "
        "a page at a time: follow `next_page_token` until it is null. Pages continue after the last order "
        "seen, so orders created meanwhile never shift, repeat or hide older ones (they appear on a new "
        "listing). Filters combine: all given must hold. A page token is valid only with the filters "
        "that returned it."
    ),
    responses={
        400: {
            "description": f"bad filter or page: {paging.LIST_ERRORS}, `INVALID_FILTER` (an empty or "
            "unrepresentable created range); `errors[].field` names the parameter"
        },
    },
)
async def list_payment_orders(
    request: Request,
    checkout_id: Annotated[str | None, Query(pattern=schemas.ID_PATTERN)] = None,
    seller_account: Annotated[str | None, Query(pattern=schemas.SELLER_PATTERN)] = None,
    buyer_id: Annotated[str | None, Query(pattern=schemas.ID_PATTERN)] = None,
    state: Annotated[
        list[schemas.OrderStateName] | None,
        Query(description="Only orders in one of these states; repeat the parameter for several."),
    ] = None,
    created_gte: Annotated[
        AwareDatetime | None,
        Query(description="Only orders created at or after this time (RFC 3339 with an offset)."),
    ] = None,
    created_lt: Annotated[
        AwareDatetime | None,
        Query(description="Only orders created before this time (RFC 3339 with an offset)."),
    ] = None,
    page_size: paging.PageSize = 0,
    page_token: paging.PageToken = "",
) -> schemas.PaymentOrderListOut:
    if created_gte is not None and created_lt is not None and created_gte >= created_lt:
        # The service refuses it too; said here in the API's parameter names.
        raise InvalidArgument(
            "INVALID_FILTER", "created_lt: must be later than created_gte", field="created_lt"
        )
    message = pb.ListPaymentOrdersRequest(
        checkout_id=checkout_id or "",
        seller_account=seller_account or "",
        buyer_id=buyer_id or "",
        states=[schemas.order_state_number(s) for s in state or ()],
        page_size=paging.page_size(page_size),
        page_token=page_token,
    )
    if created_gte is not None:
        message.create_time_from.CopyFrom(schemas.time_bound(created_gte, "created_gte"))
    if created_lt is not None:
        message.create_time_before.CopyFrom(schemas.time_bound(created_lt, "created_lt"))
    reply, _ = await call(request.app.state.upstreams.payment.ListPaymentOrders, message, _deadline(request))
    return schemas.PaymentOrderListOut(
        payment_orders=[schemas.order_out(o) for o in reply.payment_orders],
        next_page_token=paging.next_token(reply.next_page_token),
    )


@router.get(
    "/payments/{payment_order_id}",
    response_model=schemas.PaymentOrderOut,
    summary="Fetch one payment order",
    responses={404: {"description": "unknown order (`PAYMENT_ORDER_NOT_FOUND`)"}},
)
async def get_payment_order(payment_order_id: OrderId, request: Request) -> schemas.PaymentOrderOut:
    reply, _ = await call(
        request.app.state.upstreams.payment.GetPaymentOrder,
        pb.GetPaymentOrderRequest(payment_order_id=payment_order_id),
        _deadline(request),
    )
    return schemas.order_out(reply.payment_order)


@router.get(
    "/payments/{payment_order_id}/history",
    response_model=schemas.HistoryOut,
    summary="Every state transition of a payment order, oldest first",
    description="What an operator reads to see why a payment failed: each transition with its cause.",
    responses={404: {"description": "unknown order (`PAYMENT_ORDER_NOT_FOUND`)"}},
)
async def get_payment_history(payment_order_id: OrderId, request: Request) -> schemas.HistoryOut:
    reply, _ = await call(
        request.app.state.upstreams.payment.ListPaymentOrderHistory,
        pb.ListPaymentOrderHistoryRequest(payment_order_id=payment_order_id),
        _deadline(request),
    )
    return schemas.history_out(payment_order_id, reply.transitions)


@router.get(
    "/checkouts/{checkout_id}",
    response_model=schemas.PaymentEventOut,
    summary="Fetch a checkout with all its payment orders",
    responses={404: {"description": "unknown checkout (`CHECKOUT_NOT_FOUND`)"}},
)
async def get_checkout(checkout_id: CheckoutId, request: Request) -> schemas.PaymentEventOut:
    reply, _ = await call(
        request.app.state.upstreams.payment.GetCheckout,
        pb.GetCheckoutRequest(checkout_id=checkout_id),
        _deadline(request),
    )
    return schemas.event_out(reply.payment_event, status_links(request).url(request, checkout_id))


@router.get(
    "/payments/{payment_order_id}/refunds",
    response_model=schemas.RefundListOut,
    summary="List a payment order's refunds, newest first",
    description="Paginated like `GET /v1/payments`: follow `next_page_token` until it is null.",
    responses={
        400: {"description": f"bad page: {paging.LIST_ERRORS}"},
        404: {"description": "unknown order (`PAYMENT_ORDER_NOT_FOUND`)"},
    },
)
async def list_refunds(
    payment_order_id: OrderId,
    request: Request,
    page_size: paging.PageSize = 0,
    page_token: paging.PageToken = "",
) -> schemas.RefundListOut:
    reply, _ = await call(
        request.app.state.upstreams.payment.ListRefunds,
        pb.ListRefundsRequest(
            payment_order_id=payment_order_id, page_size=paging.page_size(page_size), page_token=page_token
        ),
        _deadline(request),
    )
    return schemas.RefundListOut(
        payment_order_id=payment_order_id,
        refunds=[schemas.refund_out(r) for r in reply.refunds],
        next_page_token=paging.next_token(reply.next_page_token),
    )


@router.post(
    "/payments/{payment_order_id}/refunds",
    status_code=201,
    response_model=schemas.CreateRefundOut,
    summary="Refund all or part of a successful payment order",
    description=(
        "Without a body (or without `amount`) everything not yet refunded is refunded. The amount is a "
        "decimal string in the order's currency, which the gateway reads from the order first; the "
        "payment service re-checks everything under a row lock."
    ),
    responses={
        400: {
            "description": "bad amount (`INVALID_AMOUNT`, `AMOUNT_PRECISION_EXCEEDED`, `AMOUNT_NOT_POSITIVE`) "
            "or reason"
        },
        404: {"description": "unknown order (`PAYMENT_ORDER_NOT_FOUND`)"},
        409: {"description": "order not refundable, or more than captured (`REFUND_EXCEEDS_CAPTURED`)"},
        415: {"description": "body is not `application/json`"},
    },
)
async def create_refund(
    payment_order_id: OrderId,
    request: Request,
    response: Response,
    idempotency_key: IdempotencyKey,
    body: Annotated[schemas.RefundBody | None, Body()] = None,
) -> schemas.CreateRefundOut:
    payment = request.app.state.upstreams.payment
    amount_minor = 0  # the contract's "everything not yet refunded"
    if body is not None and body.amount is not None:
        # The currency fixes how the amount parses; it never changes after the order is created, so
        # reading it first cannot race with the refund.
        order, _ = await call(
            payment.GetPaymentOrder,
            pb.GetPaymentOrderRequest(payment_order_id=payment_order_id),
            _deadline(request),
        )
        amount_minor = schemas.parse_positive_amount(body.amount, order.payment_order.currency, "amount")
    reply, replayed = await call(
        payment.CreateRefund,
        pb.CreateRefundRequest(
            payment_order_id=payment_order_id,
            amount_minor=amount_minor,
            reason=(body.reason if body else None) or "",
        ),
        _deadline(request),
    )
    mark_replayed(response, replayed)
    return schemas.CreateRefundOut(
        refund=schemas.refund_out(reply.refund), payment_order=schemas.order_out(reply.payment_order)
    )
