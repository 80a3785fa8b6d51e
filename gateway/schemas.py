"""REST shapes of pay-in and their translation to and from ``payments.v1``.

Validation happens in two steps. Pydantic (strict, unknown fields refused) checks the structure: types,
formats, required fields; its errors are ``INVALID_REQUEST`` listing every bad field. Then
:func:`create_payment_request` checks what needs several fields or the configuration (amount against the
currency's exponent, limits, one currency per checkout, duplicate ids); it stops at the first problem
and answers with a specific code (``AMOUNT_TOO_LARGE``, ``MIXED_CURRENCIES``, ...) naming the field.
Either way nothing reaches the payment service, so nothing is stored.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal, cast
from urllib.parse import urlsplit

from google.protobuf.timestamp_pb2 import Timestamp
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints

from svckit.errors import InvalidArgument
from svckit.gen.payments.v1 import payment_service_pb2 as pb
from svckit.money import MoneyError, format_amount, normalize_currency, parse_amount

ID_PATTERN = r"^[A-Za-z0-9_.:\-]{1,128}$"
SELLER_PATTERN = r"^[A-Za-z0-9_.\-@]{1,128}$"
ID_DESCRIPTION = "1-128 characters of A-Z a-z 0-9 _ . : -"

Id = Annotated[str, StringConstraints(pattern=ID_PATTERN)]
SellerAccount = Annotated[str, StringConstraints(pattern=SELLER_PATTERN)]


def _amount_is_a_string(value: Any) -> Any:
    if not isinstance(value, str):
        raise ValueError('amount must be a decimal string such as "3.15", not a JSON number')
    return value


def _one_line(value: str) -> str:
    if "\n" in value or "\t" in value:  # other control characters never get past jsonbody.parse
        raise ValueError("must be a single line without tabs")
    return value


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("must be an absolute http(s) URL")
    return value


# No length limit here: a long amount is AMOUNT_TOO_LARGE (parse_amount counts digits before converting).
Amount = Annotated[str, BeforeValidator(_amount_is_a_string), Field(examples=["25.00"])]
HttpUrl = Annotated[str, Field(max_length=2048), AfterValidator(_http_url)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class BuyerInfoIn(_Strict):
    buyer_id: Id = Field(description=f"Your id of the buyer ({ID_DESCRIPTION}).", examples=["buyer_42"])
    email: Annotated[str, StringConstraints(max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")] | None = (
        None
    )
    name: (
        Annotated[str, StringConstraints(min_length=1, max_length=200), AfterValidator(_one_line)] | None
    ) = None
    country: Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")] | None = Field(
        default=None, description="ISO 3166-1 alpha-2, upper case.", examples=["DE"]
    )


class LineItemIn(_Strict):
    name: str = Field(
        description="What was bought: 1-100 printable characters, one line.", examples=["Desk lamp"]
    )
    # Bounded to what the wire carries (int32); the payment service applies the real limit.
    quantity: int = Field(default=1, ge=-(2**31), le=2**31 - 1, description="How many; 1-9999.", examples=[2])


class PaymentOrderIn(_Strict):
    payment_order_id: Id = Field(description="Your globally unique id of this seller's order.")
    seller_account: SellerAccount = Field(examples=["seller_1"])
    amount: Amount = Field(description="Decimal string in the currency's major unit; positive.")
    currency: Annotated[str, StringConstraints(min_length=3, max_length=3)] = Field(examples=["USD"])
    # The limits (count, name length, quantity) are the payment service's, checked there once.
    line_items: list[LineItemIn] = Field(
        default_factory=list,
        description="Optional: what the buyer bought from this seller (at most 20), shown on the hosted "
        "payment page and the status page instead of the order id.",
    )


class CreatePaymentBody(_Strict):
    checkout_id: Id = Field(description=f"Your id of the checkout ({ID_DESCRIPTION}); unique.")
    buyer_info: BuyerInfoIn
    payment_orders: list[PaymentOrderIn] = Field(
        description="One order per seller; one currency per checkout."
    )
    success_url: HttpUrl | None = Field(
        default=None,
        description="Where the buyer goes after paying (hosted page or 3-D Secure); default: the "
        "checkout's status page on the gateway (`status_page_url`).",
    )
    cancel_url: HttpUrl | None = Field(
        default=None,
        description="Where the buyer goes after giving up or failing; default: the status page.",
    )
    payment_method: Annotated[str, StringConstraints(pattern=r"^pm_[A-Za-z0-9_]{1,250}$")] | None = Field(
        default=None, description="A PSP payment-method token; selects direct mode."
    )

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "checkout_id": "chk_1001",
                    "buyer_info": {"buyer_id": "buyer_42", "email": "ada@example.com", "country": "DE"},
                    "payment_orders": [
                        {
                            "payment_order_id": "po_1001_a",
                            "seller_account": "seller_a",
                            "amount": "25.00",
                            "currency": "EUR",
                            "line_items": [
                                {"name": "Desk lamp", "quantity": 1},
                                {"name": "Bulb", "quantity": 2},
                            ],
                        },
                        {
                            "payment_order_id": "po_1001_b",
                            "seller_account": "seller_b",
                            "amount": "9.90",
                            "currency": "EUR",
                        },
                    ],
                    "success_url": "https://shop.example.com/paid",
                    "cancel_url": "https://shop.example.com/cart",
                }
            ]
        }
    )


class RefundBody(_Strict):
    amount: Amount | None = Field(default=None, description="Absent: refund everything not yet refunded.")
    reason: Literal["duplicate", "fraudulent", "requested_by_customer"] | None = None


class ReviewBody(_Strict):
    decision: Literal["approve", "decline"]
    note: Annotated[str, StringConstraints(max_length=1000)] = ""


# -- out ----------------------------------------------------------------------------------------------


class BuyerInfoOut(BaseModel):
    buyer_id: str
    email: str | None
    name: str | None
    country: str | None


class LineItemOut(BaseModel):
    name: str
    quantity: int


class PaymentOrderOut(BaseModel):
    payment_order_id: str
    checkout_id: str
    seller_account: str
    amount: str = Field(examples=["25.00"])
    currency: str
    state: str = Field(
        description="not_started, executing, pending, success, failed, unknown, "
        "partially_refunded or refunded",
        examples=["executing"],
    )
    created_at: str | None
    updated_at: str | None
    psp_reference: str | None
    failure_code: str | None
    failure_message: str | None
    next_action_url: str | None
    commission: str
    refunded: str
    wallet_updated: bool
    ledger_updated: bool
    line_items: list[LineItemOut] = Field(default_factory=list)


class DisputeOut(BaseModel):
    dispute_id: str
    amount: str = Field(examples=["45.00"])
    currency: str
    status: str = Field(
        examples=["needs_response"], description="The PSP's; won, lost and warning_closed are final."
    )
    reason: str = Field(examples=["fraudulent"])
    evidence_due_by: str | None
    created_at: str | None
    updated_at: str | None


class PaymentEventOut(BaseModel):
    checkout_id: str
    buyer_info: BuyerInfoOut
    mode: str = Field(examples=["hosted"])
    hosted_page_url: str | None
    status_page_url: str | None = Field(
        default=None,
        description="The buyer's page for this checkout on the gateway (orders and their states, no API "
        "key needed; the link is signed, so give it only to the buyer).",
    )
    created_at: str | None
    payment_orders: list[PaymentOrderOut]
    disputes: list[DisputeOut] = Field(
        default_factory=list,
        description="Chargebacks of the checkout's charge, as the PSP last reported them.",
    )


class TransitionOut(BaseModel):
    from_state: str | None = Field(alias="from", description="null for the creation of the order")
    to_state: str = Field(alias="to")
    cause: str
    detail: str | None
    time: str | None

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)


class HistoryOut(BaseModel):
    payment_order_id: str
    transitions: list[TransitionOut]


class RefundOut(BaseModel):
    refund_id: str
    payment_order_id: str
    amount: str
    currency: str
    state: str = Field(examples=["pending"])
    psp_reference: str | None
    created_at: str | None


class CreateRefundOut(BaseModel):
    refund: RefundOut
    payment_order: PaymentOrderOut


class PaymentOrderListOut(BaseModel):
    payment_orders: list[PaymentOrderOut] = Field(description="Newest first (created_at, then id).")
    next_page_token: str | None = Field(
        description="Pass as `page_token` for the next (older) page; null on the last page."
    )


class RefundListOut(BaseModel):
    payment_order_id: str
    refunds: list[RefundOut] = Field(description="Newest first (created_at, then id).")
    next_page_token: str | None = Field(
        description="Pass as `page_token` for the next (older) page; null on the last page."
    )


# -- translation --------------------------------------------------------------------------------------


def _bad(reason: str, field: str, message: str) -> InvalidArgument:
    return InvalidArgument(reason, f"{field}: {message}", field=field)


def parse_positive_amount(text: str, currency: str, field: str) -> int:
    try:
        minor = parse_amount(text, currency)
    except MoneyError as exc:
        raise _bad(exc.reason, field, str(exc)) from None
    if minor <= 0:
        raise _bad("AMOUNT_NOT_POSITIVE", field, f"must be greater than zero, got {text!r}")
    return minor


def create_payment_request(body: CreatePaymentBody, status_page_url: str = "") -> pb.CreatePaymentRequest:
    """The body's shape and amount format, checked here; the order limits (count, largest amount, line
    items) are the payment service's, configured there once, and its refusal is passed on unchanged.
    A hosted checkout without ``success_url`` / ``cancel_url`` sends the buyer to ``status_page_url``."""
    orders = body.payment_orders
    if not orders:
        raise _bad("NO_PAYMENT_ORDERS", "payment_orders", "at least one payment order is required")
    hosted_default = status_page_url if body.payment_method is None else ""
    seen: set[str] = set()
    checkout_currency: str | None = None
    out: list[pb.PaymentOrderInput] = []
    for i, order in enumerate(orders):
        at = f"payment_orders[{i}]"
        if order.payment_order_id in seen:
            raise _bad(
                "DUPLICATE_PAYMENT_ORDER_ID",
                f"{at}.payment_order_id",
                f"{order.payment_order_id!r} appears more than once",
            )
        seen.add(order.payment_order_id)
        try:
            currency = normalize_currency(order.currency)
        except MoneyError as exc:
            raise _bad(exc.reason, f"{at}.currency", str(exc)) from None
        if checkout_currency is None:
            checkout_currency = currency
        elif currency != checkout_currency:
            raise _bad(
                "MIXED_CURRENCIES",
                f"{at}.currency",
                f"{currency} differs from {checkout_currency}; one currency per checkout",
            )
        minor = parse_positive_amount(order.amount, currency, f"{at}.amount")
        out.append(
            pb.PaymentOrderInput(
                payment_order_id=order.payment_order_id,
                seller_account=order.seller_account,
                amount_minor=minor,
                currency=currency,
                line_items=[pb.LineItem(name=li.name, quantity=li.quantity) for li in order.line_items],
            )
        )
    buyer = body.buyer_info
    return pb.CreatePaymentRequest(
        checkout_id=body.checkout_id,
        buyer=pb.BuyerInfo(
            buyer_id=buyer.buyer_id,
            email=buyer.email or "",
            name=buyer.name or "",
            country=buyer.country or "",
        ),
        payment_orders=out,
        success_url=body.success_url or hosted_default,
        cancel_url=body.cancel_url or hosted_default,
        payment_method=body.payment_method or "",
    )


# The states as the API spells them; tests/gateway/test_gateway_lists.py keeps them equal to the proto's.
OrderStateName = Literal[
    "not_started", "executing", "pending", "success", "failed", "unknown", "partially_refunded", "refunded"
]


def order_state_number(name: str) -> pb.PaymentOrderState:
    # The stubs type Value() as a plain int; every name of OrderStateName is one of the enum's.
    return cast(pb.PaymentOrderState, pb.PaymentOrderState.Value("PAYMENT_ORDER_STATE_" + name.upper()))


def time_bound(value: datetime, field: str) -> Timestamp:
    """A filter's moment as a protobuf Timestamp (UTC); a moment outside years 1-9999 in UTC is refused."""
    ts = Timestamp()
    try:
        ts.FromDatetime(value.astimezone(UTC))
    except (ValueError, OverflowError):
        raise _bad("INVALID_FILTER", field, "must be a time between years 1 and 9999 in UTC") from None
    return ts


def _enum_name(enum_type: Any, value: int, prefix: str) -> str:
    return enum_type.Name(value).removeprefix(prefix).lower()


def order_state(value: int) -> str:
    return _enum_name(pb.PaymentOrderState, value, "PAYMENT_ORDER_STATE_")


def timestamp(ts: Timestamp) -> str | None:
    """ISO 8601 in UTC (``2026-11-22T10:15:00.123456Z``); None when the field was never set."""
    if ts.seconds == 0 and ts.nanos == 0:
        return None
    return ts.ToDatetime(tzinfo=UTC).isoformat().replace("+00:00", "Z")


def _opt(text: str) -> str | None:
    return text or None


def order_out(o: pb.PaymentOrder) -> PaymentOrderOut:
    return PaymentOrderOut(
        payment_order_id=o.payment_order_id,
        checkout_id=o.checkout_id,
        seller_account=o.seller_account,
        amount=format_amount(o.amount_minor, o.currency),
        currency=o.currency,
        state=order_state(o.state),
        created_at=timestamp(o.create_time),
        updated_at=timestamp(o.update_time),
        psp_reference=_opt(o.psp_reference),
        failure_code=_opt(o.failure_code),
        failure_message=_opt(o.failure_message),
        next_action_url=_opt(o.next_action_url),
        commission=format_amount(o.commission_minor, o.currency),
        refunded=format_amount(o.refunded_minor, o.currency),
        wallet_updated=o.wallet_updated,
        ledger_updated=o.ledger_updated,
        line_items=[LineItemOut(name=li.name, quantity=li.quantity) for li in o.line_items],
    )


def event_out(e: pb.PaymentEvent, status_page_url: str | None = None) -> PaymentEventOut:
    return PaymentEventOut(
        status_page_url=status_page_url,
        checkout_id=e.checkout_id,
        buyer_info=BuyerInfoOut(
            buyer_id=e.buyer.buyer_id,
            email=_opt(e.buyer.email),
            name=_opt(e.buyer.name),
            country=_opt(e.buyer.country),
        ),
        mode=_enum_name(pb.PaymentMode, e.mode, "PAYMENT_MODE_"),
        hosted_page_url=_opt(e.hosted_page_url),
        created_at=timestamp(e.create_time),
        payment_orders=[order_out(o) for o in e.payment_orders],
        disputes=[
            DisputeOut(
                dispute_id=d.dispute_id,
                amount=format_amount(d.amount_minor, d.currency),
                currency=d.currency,
                status=d.status,
                reason=d.reason,
                evidence_due_by=timestamp(d.evidence_due_time) if d.HasField("evidence_due_time") else None,
                created_at=timestamp(d.create_time),
                updated_at=timestamp(d.update_time),
            )
            for d in e.disputes
        ],
    )


def history_out(payment_order_id: str, transitions: Any) -> HistoryOut:
    return HistoryOut(
        payment_order_id=payment_order_id,
        transitions=[
            TransitionOut(
                from_state=order_state(t.from_state) if t.from_state else None,
                to_state=order_state(t.to_state),
                cause=t.cause,
                detail=_opt(t.detail),
                time=timestamp(t.create_time),
            )
            for t in transitions
        ],
    )


def refund_out(r: pb.Refund) -> RefundOut:
    return RefundOut(
        refund_id=r.refund_id,
        payment_order_id=r.payment_order_id,
        amount=format_amount(r.amount_minor, r.currency),
        currency=r.currency,
        state=_enum_name(pb.RefundState, r.state, "REFUND_STATE_"),
        psp_reference=_opt(r.psp_reference),
        created_at=timestamp(r.create_time),
    )
