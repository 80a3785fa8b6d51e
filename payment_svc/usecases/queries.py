"""Reads: an order, a checkout with its orders, an order's history, and the listings of orders and
refunds (keyset pages of svckit.pagination). Each takes the caller's unit of work (a reader, usually)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from payment_svc.domain import OrderState
from payment_svc.rows import OrderColumns, OrderRow, RefundRow, TransitionRow
from payment_svc.uow import UnitOfWork
from payment_svc.usecases.commands import CheckoutView, is_client_id
from svckit import pagination
from svckit.errors import InvalidArgument, NotFound
from svckit.identifiers import EXTERNAL_ID_RULE, is_external_id


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
    return CheckoutView(
        event,
        await uow.repo.orders_of_checkout(checkout_id),
        await uow.repo.disputes_of_checkout(checkout_id),
    )


async def get_checkout_by_payment_intent(uow: UnitOfWork, payment_intent_id: str) -> CheckoutView:
    if not payment_intent_id:
        raise InvalidArgument("MISSING_FIELD", "payment_intent_id is required", field="payment_intent_id")
    orders = await uow.repo.orders_by_psp_reference(payment_intent_id)
    if not orders:
        raise NotFound(
            "CHECKOUT_NOT_FOUND",
            f"no checkout paid by {payment_intent_id!r}",
            {"payment_intent_id": payment_intent_id},
        )
    return await get_checkout(uow, orders[0].checkout_id)


MAX_BATCH_CHECKOUTS = 1000


async def orders_of_checkouts(uow: UnitOfWork, checkout_ids: Sequence[str]) -> list[OrderRow]:
    """The orders of up to MAX_BATCH_CHECKOUTS checkouts; an unknown checkout has none (not an error)."""
    return await uow.repo.orders_of_checkouts(_batch_checkout_ids(checkout_ids))


async def order_columns_of_checkouts(uow: UnitOfWork, checkout_ids: Sequence[str]) -> OrderColumns:
    """What reconciliation compares of the orders of up to MAX_BATCH_CHECKOUTS checkouts, as columns; the
    same checks as :func:`orders_of_checkouts`."""
    return await uow.repo.order_columns_of_checkouts(_batch_checkout_ids(checkout_ids))


def _batch_checkout_ids(checkout_ids: Sequence[str]) -> list[str]:
    ids = sorted(set(checkout_ids))
    if not ids:
        raise InvalidArgument("MISSING_FIELD", "checkout_ids is required", field="checkout_ids")
    if len(ids) > MAX_BATCH_CHECKOUTS:
        raise InvalidArgument(
            "TOO_MANY_ITEMS", f"at most {MAX_BATCH_CHECKOUTS} checkout ids per call", field="checkout_ids"
        )
    bad = next((i for i in ids if not is_client_id(i)), None)
    if bad is not None:
        raise InvalidArgument(
            "INVALID_ID", "checkout_ids must be 1-128 letters, digits or _.:-", field="checkout_ids"
        )
    return ids


async def history(uow: UnitOfWork, payment_order_id: str) -> list[TransitionRow]:
    await get_order(uow, payment_order_id)
    return await uow.repo.history(payment_order_id)


# -- listings -----------------------------------------------------------------------------------------

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000


@dataclass(frozen=True)
class OrderFilter:
    """What ListPaymentOrders narrows the orders to; an empty field does not narrow."""

    checkout_id: str = ""
    seller_account: str = ""
    buyer_id: str = ""
    states: tuple[OrderState, ...] = ()
    created_from: datetime | None = None
    created_before: datetime | None = None

    def validate(self) -> None:
        for name in ("checkout_id", "buyer_id"):
            value = getattr(self, name)
            if value and not is_client_id(value):
                raise InvalidArgument(
                    "INVALID_ID", f"{name} must be 1-128 letters, digits or _.:-", field=name
                )
        if self.seller_account and not is_external_id(self.seller_account):
            raise InvalidArgument(
                "INVALID_SELLER_ACCOUNT", f"seller_account must be {EXTERNAL_ID_RULE}", field="seller_account"
            )
        start, end = self.created_from, self.created_before
        if start is not None and end is not None and start >= end:
            raise InvalidArgument(
                "INVALID_FILTER",
                f"the created range is empty: {end.isoformat()} is not after {start.isoformat()}",
                field="create_time_before",
            )

    def listing(self) -> list[Any]:
        """The filters as the page token records them, so a token is honoured only with the same ones."""
        return [
            "payment_orders",
            self.checkout_id,
            self.seller_account,
            self.buyer_id,
            sorted(state.value for state in self.states),
            self.created_from.isoformat() if self.created_from else "",
            self.created_before.isoformat() if self.created_before else "",
        ]


def _keyset(token: str, listing: list[Any]) -> tuple[datetime, str] | None:
    """The (created_at, id) a page token of ``listing`` resumes after; None for the first page."""
    position = pagination.decode_token(token, listing, list)
    if position is None:
        return None
    try:
        created, key = position
        if not isinstance(created, str) or not isinstance(key, str):
            raise ValueError("not a keyset position")
        return datetime.fromisoformat(created), key
    except (ValueError, TypeError):
        raise InvalidArgument(
            "INVALID_PAGE_TOKEN", "page_token is not one this listing returned", field="page_token"
        ) from None


def _next_token(rows: Sequence[OrderRow | RefundRow], size: int, listing: list[Any], key: str) -> str:
    """The token of the page after ``rows[:size]``; empty when the query found no row beyond it."""
    if len(rows) <= size:
        return ""
    last = rows[size - 1]
    return pagination.encode_token(listing, [last.created_at.isoformat(), getattr(last, key)])


async def list_orders(
    uow: UnitOfWork, filters: OrderFilter, page_size: int, page_token: str
) -> tuple[list[OrderRow], str]:
    """A page of orders newest first, and the token of the next page ("" on the last)."""
    filters.validate()
    size = pagination.page_size(page_size, default=DEFAULT_PAGE_SIZE, maximum=MAX_PAGE_SIZE)
    listing = filters.listing()
    rows = await uow.repo.list_orders(
        checkout_id=filters.checkout_id,
        seller_account=filters.seller_account,
        buyer_id=filters.buyer_id,
        states=[state.value for state in filters.states],
        created_from=filters.created_from,
        created_before=filters.created_before,
        after=_keyset(page_token, listing),
        limit=size + 1,  # one more than the page says whether another page follows
    )
    return rows[:size], _next_token(rows, size, listing, "payment_order_id")


async def list_refunds(
    uow: UnitOfWork, payment_order_id: str, page_size: int, page_token: str
) -> tuple[list[RefundRow], str]:
    """A page of an order's refunds newest first, and the token of the next page ("" on the last)."""
    size = pagination.page_size(page_size, default=DEFAULT_PAGE_SIZE, maximum=MAX_PAGE_SIZE)
    await get_order(uow, payment_order_id)
    listing = ["refunds", payment_order_id]
    rows = await uow.repo.list_refunds(payment_order_id, _keyset(page_token, listing), size + 1)
    return rows[:size], _next_token(rows, size, listing, "refund_id")


async def list_all_refunds(
    uow: UnitOfWork,
    payment_order_id: str,
    window: tuple[datetime, datetime] | None,
    states: Sequence[str],
    refund_id: str,
    page_size: int,
    page_token: str,
) -> tuple[list[RefundRow], str]:
    """A page of every order's refunds in a create-time window (or the one ``refund_id``), newest first."""
    if payment_order_id:
        raise InvalidArgument(
            "INVALID_FILTER", "an order's refunds take no window, state or refund_id filter",
            field="payment_order_id",
        )  # fmt: skip
    if window is None and not refund_id:
        raise InvalidArgument(
            "MISSING_FIELD", "payment_order_id, a create-time window or refund_id is required",
            field="payment_order_id",
        )  # fmt: skip
    size = pagination.page_size(page_size, default=DEFAULT_PAGE_SIZE, maximum=MAX_PAGE_SIZE)
    bounds = [window[0].isoformat(), window[1].isoformat()] if window is not None else []
    listing = ["all-refunds", refund_id, sorted(states), *bounds]
    rows = await uow.repo.refunds_matching(
        window=window, states=states, refund_id=refund_id, after=_keyset(page_token, listing), limit=size + 1
    )
    return rows[:size], _next_token(rows, size, listing, "refund_id")


@dataclass(frozen=True)
class OrderStats:
    since: datetime
    buckets: list[tuple[datetime, int, int, int]]
    """(start, created, succeeded, failed), oldest first, buckets with orders only."""
    declines: list[tuple[str, int]]


_CAPTURED = (OrderState.SUCCESS, OrderState.PARTIALLY_REFUNDED, OrderState.REFUNDED)


async def order_stats(uow: UnitOfWork, window_minutes: int, bucket_minutes: int, now: datetime) -> OrderStats:
    """Orders created in the last ``window_minutes`` (0: 180, at most a day) per ``bucket_minutes``
    (0: 5, at most an hour and the window), and the failed ones by decline code."""
    window = window_minutes or 180
    bucket = bucket_minutes or 5
    if not 1 <= window <= 1440:
        raise InvalidArgument("INVALID_FILTER", "window_minutes must be 1-1440", field="window_minutes")
    if not 1 <= bucket <= min(60, window):
        raise InvalidArgument(
            "INVALID_FILTER", "bucket_minutes must be 1-60 and at most the window", field="bucket_minutes"
        )
    since = now - timedelta(minutes=window)
    buckets, declines = await uow.repo.order_stats(
        since, bucket * 60, [s.value for s in _CAPTURED], OrderState.FAILED.value
    )
    return OrderStats(
        since=since,
        buckets=[(r.start, r.created, r.succeeded, r.failed) for r in buckets],
        declines=[(r.code, r.count) for r in declines],
    )
