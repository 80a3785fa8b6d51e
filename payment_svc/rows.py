"""The payment service's stored records as typed values: what the repository returns and the use cases
read. Frozen: a use case changes a record through the repository, never by mutating the copy it read."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, ClassVar, NamedTuple, Self


class _Record:
    _names: ClassVar[tuple[str, ...]]

    @classmethod
    def of(cls, row: Any) -> Self:
        """From a driver row (named tuple, SQLAlchemy ``Row``) or a mapping; extra columns (a statement's
        ``from_state``, ``event_created_at``) are left out."""
        values: Mapping[str, Any] = row if isinstance(row, Mapping) else row._asdict()
        return cls(**{name: values[name] for name in cls._names})


def _names(cls: type[_Record]) -> type[_Record]:
    cls._names = tuple(f.name for f in fields(cls))  # type: ignore[arg-type]  # a dataclass by now
    return cls


@_names
@dataclass(frozen=True, slots=True)
class OrderRow(_Record):
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


@_names
@dataclass(frozen=True, slots=True)
class CheckoutRow(_Record):
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


@_names
@dataclass(frozen=True, slots=True)
class RefundRow(_Record):
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


@_names
@dataclass(frozen=True, slots=True)
class TransitionRow(_Record):
    """One line of an order's history (table ``order_transitions``)."""

    id: int
    payment_order_id: str
    from_state: str | None
    to_state: str
    cause: str
    detail: str
    created_at: datetime


class DueOrder(NamedTuple):
    """An order the janitor is due to look at."""

    payment_order_id: str
    checkout_id: str


class SettlementState(NamedTuple):
    """Where the settlement of an order or a refund stands (``payment_svc.settlement``)."""

    attempt: int
    undo_attempt: int | None
