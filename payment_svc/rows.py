"""The payment service's stored records as typed values: what the repository returns and the use cases
read. Immutable (named tuples): a use case changes a record through the repository, never by mutating
the copy it read."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from operator import attrgetter, itemgetter
from typing import Any, NamedTuple, TypeVar

R = TypeVar("R", bound=tuple[Any, ...])
_GETTERS: dict[type, tuple[attrgetter[tuple[Any, ...]], itemgetter[tuple[Any, ...]]]] = {}


def _record(cls: type[R], row: Any) -> R:
    """``cls`` from a driver row (named tuple, SQLAlchemy ``Row``) or a mapping; extra columns (a
    statement's ``from_state``, ``event_created_at``) are left out. One C-level getter call and a plain
    tuple: hot paths convert a few rows per order (a frozen dataclass of 23 fields costs ten times as much)."""
    getters = _GETTERS.get(cls)
    if getters is None:
        names: tuple[str, ...] = cls._fields  # type: ignore[attr-defined]  # every R is a NamedTuple
        getters = _GETTERS[cls] = (attrgetter(*names), itemgetter(*names))
    values = getters[1](row) if isinstance(row, Mapping) else getters[0](row)
    return tuple.__new__(cls, values)


class OrderRow(NamedTuple):
    """A payment order (table ``payment_orders``)."""

    payment_order_id: str
    checkout_id: str
    seller_account: str
    amount_minor: int
    currency: str
    state: str
    created_at: datetime
    updated_at: datetime
    psp_reference: str | None
    pending_reason: str | None
    failure_code: str | None
    failure_message: str | None
    next_action_url: str | None
    commission_minor: int
    refunded_minor: int
    refund_reserved_minor: int
    wallet_updated: bool
    ledger_updated: bool
    settlement_attempt: int
    settlement_undo_attempt: int | None
    janitor_attempts: int
    next_check_at: datetime | None
    alerted_at: datetime | None
    line_items: list[dict[str, Any]]  # what was bought: [{"name": ..., "quantity": ...}]

    @classmethod
    def of(cls, row: Any) -> OrderRow:
        return _record(cls, row)


class CheckoutRow(NamedTuple):
    """A checkout: the payment event that holds its orders (table ``payment_events``)."""

    checkout_id: str
    buyer_info: dict[str, Any]
    created_at: datetime
    buyer_id: str
    mode: str  # HOSTED or DIRECT
    currency: str
    total_minor: int
    success_url: str
    cancel_url: str
    payment_method: str
    idempotency_key: str
    fingerprint: bytes | None
    psp_session_id: str | None
    hosted_page_url: str
    risk_verdict: str
    risk_rule: str

    @classmethod
    def of(cls, row: Any) -> CheckoutRow:
        return _record(cls, row)


class RefundRow(NamedTuple):
    """A refund of (part of) one order (table ``refunds``)."""

    refund_id: str
    payment_order_id: str
    amount_minor: int
    currency: str
    state: str  # PENDING, SUCCEEDED or FAILED
    reason: str | None
    psp_reference: str | None
    failure_reason: str | None
    settlement_attempt: int
    settlement_undo_attempt: int | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: Any) -> RefundRow:
        return _record(cls, row)


class DisputeRow(NamedTuple):
    """A dispute of a checkout's charge, as the PSP's events last reported it (table ``disputes``)."""

    dispute_id: str
    checkout_id: str
    payment_intent_id: str
    amount_minor: int
    currency: str
    status: str
    reason: str
    evidence_due_at: datetime | None
    last_event_id: str
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: Any) -> DisputeRow:
        return _record(cls, row)


class TransitionRow(NamedTuple):
    """One line of an order's history (table ``order_transitions``)."""

    id: int
    payment_order_id: str
    from_state: str | None
    to_state: str
    cause: str
    detail: str
    created_at: datetime

    @classmethod
    def of(cls, row: Any) -> TransitionRow:
        return _record(cls, row)


class DueOrder(NamedTuple):
    """An order the janitor is due to look at."""

    payment_order_id: str
    checkout_id: str


class SettlementState(NamedTuple):
    """Where the settlement of an order or a refund stands (``payment_svc.settlement``)."""

    attempt: int
    undo_attempt: int | None


@dataclass(slots=True)
class OrderColumns:
    """Orders as one list per field (element i of each is the same order): what reconciliation compares,
    without an object per order."""

    checkout_ids: list[str] = field(default_factory=list)
    payment_order_ids: list[str] = field(default_factory=list)
    psp_references: list[str] = field(default_factory=list)
    amounts_minor: list[int] = field(default_factory=list)
    currencies: list[str] = field(default_factory=list)
    states: list[str] = field(default_factory=list)
    create_times_unix_micros: list[int] = field(default_factory=list)
    wallet_updated: list[bool] = field(default_factory=list)
    ledger_updated: list[bool] = field(default_factory=list)
