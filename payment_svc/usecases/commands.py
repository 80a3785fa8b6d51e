"""The commands the use cases take (plain values the transport builds) and their validation."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field

from payment_svc.config import PaymentSettings
from payment_svc.domain import psp_step
from payment_svc.rows import CheckoutRow, DisputeRow, OrderRow
from svckit.errors import InvalidArgument
from svckit.identifiers import EXTERNAL_ID_RULE, is_external_id
from svckit.money import MoneyError, format_amount, normalize_currency

_ID = re.compile(r"^[A-Za-z0-9_.:\-]{1,128}$")


def is_client_id(value: str) -> bool:
    """Whether ``value`` is a well-formed id of ours or a client's (checkout, order, buyer)."""
    return _ID.match(value) is not None


MAX_LINE_ITEMS_PER_ORDER = 20
MAX_LINE_ITEM_NAME_LENGTH = 100
MAX_LINE_ITEM_QUANTITY = 9999
"""Line items are what the hosted page shows: enough for a real cart, short enough to fit its card."""


@dataclass(frozen=True)
class LineItemInput:
    name: str
    quantity: int


@dataclass(frozen=True)
class OrderInput:
    payment_order_id: str
    seller_account: str
    amount_minor: int
    currency: str
    line_items: tuple[LineItemInput, ...] = ()


@dataclass(frozen=True)
class Buyer:
    buyer_id: str
    email: str = ""
    name: str = ""
    country: str = ""


@dataclass(frozen=True)
class CreatePayment:
    checkout_id: str
    buyer: Buyer
    orders: tuple[OrderInput, ...]
    success_url: str = ""
    cancel_url: str = ""
    payment_method: str = ""

    @property
    def direct(self) -> bool:
        return bool(self.payment_method)


@dataclass
class CheckoutView:
    event: CheckoutRow
    orders: list[OrderRow] = field(default_factory=list)
    disputes: list[DisputeRow] = field(default_factory=list)


def off_step(amount_minor: int, currency: str) -> str | None:
    """Why the PSP could not move this amount, or None when it can."""
    step = psp_step(currency)
    if amount_minor % step == 0:
        return None
    return (
        f"{currency} amounts must be a multiple of {format_amount(step, currency)}: "
        f"the PSP does not move {format_amount(amount_minor, currency)} {currency}"
    )


def _field_error(reason: str, message: str, field_name: str) -> InvalidArgument:
    return InvalidArgument(reason, message, field=field_name)


def validate(cmd: CreatePayment, settings: PaymentSettings) -> str:
    """Check a CreatePayment command; return its currency. Nothing is stored when this raises."""
    if not _ID.match(cmd.checkout_id or ""):
        raise _field_error("INVALID_ID", "checkout_id must be 1-128 letters, digits or _.:-", "checkout_id")
    if not _ID.match(cmd.buyer.buyer_id or ""):
        raise _field_error(
            "INVALID_ID", "buyer_info.buyer_id must be 1-128 letters, digits or _.:-", "buyer_info.buyer_id"
        )
    if not cmd.orders:
        raise _field_error(
            "NO_PAYMENT_ORDERS", "a checkout needs at least one payment order", "payment_orders"
        )
    if len(cmd.orders) > settings.max_orders_per_checkout:
        raise _field_error(
            "TOO_MANY_ORDERS",
            f"{len(cmd.orders)} orders; at most {settings.max_orders_per_checkout} per checkout",
            "payment_orders",
        )
    seen: set[str] = set()
    currencies: set[str] = set()
    for i, order in enumerate(cmd.orders):
        where = f"payment_orders[{i}]"
        if not _ID.match(order.payment_order_id or ""):
            raise _field_error(
                "INVALID_ID",
                "payment_order_id must be 1-128 letters, digits or _.:-",
                f"{where}.payment_order_id",
            )
        if order.payment_order_id in seen:
            raise _field_error(
                "DUPLICATE_PAYMENT_ORDER_ID",
                f"{order.payment_order_id} appears twice",
                f"{where}.payment_order_id",
            )
        seen.add(order.payment_order_id)
        if not is_external_id(order.seller_account):
            raise _field_error(
                "INVALID_SELLER_ACCOUNT",
                f"seller_account must be {EXTERNAL_ID_RULE}",
                f"{where}.seller_account",
            )
        if order.amount_minor <= 0:
            raise _field_error("AMOUNT_NOT_POSITIVE", "amount must be positive", f"{where}.amount")
        try:
            currency = normalize_currency(order.currency)
        except MoneyError as exc:
            raise _field_error(exc.reason, str(exc), f"{where}.currency") from None
        if order.amount_minor > (cap := settings.max_order_amount_minor):
            # The one place this limit is checked: the gateway passes this refusal on as its 400.
            raise _field_error(
                "AMOUNT_TOO_LARGE",
                f"{format_amount(order.amount_minor, currency)} {currency} is above the limit of "
                f"{format_amount(cap, currency)} per order",
                f"{where}.amount",
            )
        currencies.add(currency)
        _validate_line_items(order.line_items, where)
        if step := off_step(order.amount_minor, currency):
            raise _field_error("AMOUNT_PRECISION_EXCEEDED", step, f"{where}.amount")
    if len(currencies) != 1:
        raise _field_error(
            "MIXED_CURRENCIES", "all orders of a checkout must share one currency", "payment_orders"
        )
    if not cmd.direct:
        for name in ("success_url", "cancel_url"):
            value = getattr(cmd, name)
            if not value.startswith(("http://", "https://")):
                raise _field_error("INVALID_URL", f"{name} must be an http(s) URL in hosted mode", name)
    elif not cmd.payment_method.startswith("pm_"):
        raise _field_error(
            "INVALID_PAYMENT_METHOD", "payment_method must be a PSP token (pm_...)", "payment_method"
        )
    return currencies.pop()


def _validate_line_items(items: tuple[LineItemInput, ...], where: str) -> None:
    if len(items) > MAX_LINE_ITEMS_PER_ORDER:
        raise _field_error(
            "TOO_MANY_LINE_ITEMS",
            f"{len(items)} line items; at most {MAX_LINE_ITEMS_PER_ORDER} per order",
            f"{where}.line_items",
        )
    for j, item in enumerate(items):
        at = f"{where}.line_items[{j}]"
        name = item.name
        if not name.strip() or len(name) > MAX_LINE_ITEM_NAME_LENGTH or not name.isprintable():
            raise _field_error(
                "INVALID_LINE_ITEM_NAME",
                f"name must be 1-{MAX_LINE_ITEM_NAME_LENGTH} printable characters on one line",
                f"{at}.name",
            )
        if not 1 <= item.quantity <= MAX_LINE_ITEM_QUANTITY:
            raise _field_error(
                "INVALID_LINE_ITEM_QUANTITY",
                f"quantity must be 1-{MAX_LINE_ITEM_QUANTITY}, got {item.quantity}",
                f"{at}.quantity",
            )


def refund_id_for(payment_order_id: str, idempotency_key: str) -> str:
    """Deterministic, so a retried or resumed refund request finds the refund it started."""
    digest = hashlib.sha256(f"{payment_order_id}\x00{idempotency_key}".encode()).hexdigest()[:24]
    return f"rf_{digest}"
