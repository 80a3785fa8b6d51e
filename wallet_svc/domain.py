"""The wallet's vocabulary: movement and reservation kinds, the values the service returns, the
reservation lifecycle as data, and the rules a request must meet before anything is read or written.
No database and no transport here; the use cases are in ``wallet_svc.service``."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar

from svckit.errors import DomainError, FailedPrecondition, Internal, InvalidArgument
from svckit.idempotency import ItemKey, StoredAnswer
from svckit.identifiers import EXTERNAL_ID_RULE, is_external_id
from svckit.money import Money, MoneyError, normalize_currency

_REFERENCE_ID = re.compile(r"^[A-Za-z0-9_.\-@:]{1,128}$")
_RESERVATION_ID = re.compile(r"^rsv_[0-9a-f]{32}$")

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
MAX_BATCH_ITEMS = 1000
INT64_MAX = 2**63 - 1


class ReferenceKind(enum.StrEnum):
    PAYMENT_ORDER = "PAYMENT_ORDER"
    REFUND = "REFUND"
    PAYOUT = "PAYOUT"
    ADJUSTMENT = "ADJUSTMENT"


class MovementKind(enum.StrEnum):
    CREDIT = "CREDIT"
    DEBIT = "DEBIT"
    RESERVE = "RESERVE"
    RELEASE = "RELEASE"
    CAPTURE = "CAPTURE"


# Signed effect of each movement kind on (available, reserved), per unit of amount. The database
# checks the same table (ck_movements_kind_deltas), so the stored deltas can be trusted by sums.
KIND_EFFECT: dict[MovementKind, tuple[int, int]] = {
    MovementKind.CREDIT: (1, 0),
    MovementKind.DEBIT: (-1, 0),
    MovementKind.RESERVE: (-1, 1),
    MovementKind.RELEASE: (1, -1),
    MovementKind.CAPTURE: (0, -1),
}


class ReservationState(enum.StrEnum):
    OPEN = "OPEN"
    PARTIALLY_SETTLED = "PARTIALLY_SETTLED"
    CLOSED = "CLOSED"


# Forward-only lifecycle; CLOSED is terminal, so a closed reservation can never be released or
# captured again (Blnk #182: a resolved hold must stay resolved).
RESERVATION_TRANSITIONS: dict[ReservationState, frozenset[ReservationState]] = {
    ReservationState.OPEN: frozenset({ReservationState.PARTIALLY_SETTLED, ReservationState.CLOSED}),
    ReservationState.PARTIALLY_SETTLED: frozenset(
        {ReservationState.PARTIALLY_SETTLED, ReservationState.CLOSED}
    ),
    ReservationState.CLOSED: frozenset(),
}


@dataclass(frozen=True)
class Reference:
    kind: ReferenceKind
    id: str


@dataclass(frozen=True)
class Wallet:
    seller_id: str
    available: Money
    reserved: Money
    updated_at: datetime | None = None


@dataclass(frozen=True)
class Movement:
    id: int
    seller_id: str
    kind: MovementKind
    amount: Money
    available_after: Money
    reserved_after: Money
    reference: Reference
    reservation_id: str | None
    idempotency_key: str
    created_at: datetime


@dataclass(frozen=True)
class Reservation:
    id: str
    seller_id: str
    state: ReservationState
    amount: Money
    released: Money
    captured: Money
    remaining: Money
    reference: Reference
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class MovementResult:
    """Outcome of a mutating call: the movement, the wallet after it, and the reservation if any."""

    movement: Movement
    wallet: Wallet
    reservation: Reservation | None = None


@dataclass(frozen=True)
class ShortfallResult:
    """Outcome of a debit that may fall short: the movement (None when nothing was available), the
    wallet after it, and the part of the amount it could not take."""

    movement: Movement | None
    wallet: Wallet
    shortfall_minor: int


@dataclass(frozen=True)
class BatchItem:
    """One item of a batch, unvalidated, as its single RPC (Credit, Debit, Reserve or
    CaptureReservation) would take it."""

    kind: MovementKind  # CREDIT, DEBIT, RESERVE or CAPTURE
    seller_id: str  # empty for a capture (the reservation names the wallet)
    amount_minor: int
    currency: str
    reference: tuple[ReferenceKind | None, str]
    key: ItemKey
    reservation_id: str = ""
    """A capture's reservation."""
    amount_given: bool = True
    """False for a capture of everything remaining (the request's amount unset)."""


ItemOutcome = StoredAnswer | DomainError
"""A batch item's outcome: the answer stored under its key (a new movement's, or replayed), or its
refusal."""


T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next_page_token: str


def next_reservation_state(reservation: Reservation, amount_minor: int) -> ReservationState:
    """The state after taking ``amount_minor`` out of the reservation, or RESERVATION_EXHAUSTED."""
    remaining = reservation.remaining.amount_minor
    if not RESERVATION_TRANSITIONS[reservation.state] or amount_minor > remaining:
        raise FailedPrecondition(
            "RESERVATION_EXHAUSTED",
            f"reservation {reservation.id} holds {remaining} minor units; {amount_minor} requested",
            {"reservation_id": reservation.id, "remaining_minor": remaining, "requested_minor": amount_minor},
        )
    target = ReservationState.CLOSED if amount_minor == remaining else ReservationState.PARTIALLY_SETTLED
    if target not in RESERVATION_TRANSITIONS[reservation.state]:
        raise Internal("ILLEGAL_RESERVATION_TRANSITION", f"{reservation.state} → {target} is not allowed")
    return target


# ---- validation ---------------------------------------------------------------------------------


def validate_seller_id(seller_id: str) -> str:
    if not is_external_id(seller_id):
        raise InvalidArgument("INVALID_SELLER_ID", f"seller_id must be {EXTERNAL_ID_RULE}", field="seller_id")
    return seller_id


def validate_currency(code: str, field: str = "currency") -> str:
    try:
        return normalize_currency(code)
    except MoneyError as exc:
        raise InvalidArgument(exc.reason, str(exc), field=field) from None


def validate_amount(amount_minor: int, currency: str) -> Money:
    """A positive amount in a known currency (fields named as in the requests' ``amount``)."""
    currency = validate_currency(currency, field="amount.currency")
    if amount_minor <= 0:
        raise InvalidArgument(
            "AMOUNT_NOT_POSITIVE",
            f"amount_minor must be a positive count of minor units, got {amount_minor}",
            field="amount.amount_minor",
        )
    return Money(amount_minor, currency)


def validate_reference(kind: ReferenceKind | None, ref_id: str) -> Reference:
    if kind is None:
        raise InvalidArgument(
            "INVALID_REFERENCE_KIND",
            f"reference.kind must be one of {', '.join(k.value for k in ReferenceKind)}",
            field="reference.kind",
        )
    if not _REFERENCE_ID.match(ref_id or ""):
        raise InvalidArgument(
            "INVALID_REFERENCE_ID",
            "reference.id must be 1-128 letters, digits or _.-@:",
            field="reference.id",
        )
    return Reference(kind, ref_id)


def validate_reference_filter(ref_id: str) -> str:
    """A reference id to filter movements by; empty means no filter."""
    if ref_id and not _REFERENCE_ID.match(ref_id):
        raise InvalidArgument(
            "INVALID_REFERENCE_ID",
            "reference_id must be 1-128 letters, digits or _.-@:",
            field="reference_id",
        )
    return ref_id


def validate_reservation_id(reservation_id: str) -> str:
    if not _RESERVATION_ID.match(reservation_id or ""):
        raise InvalidArgument(
            "INVALID_RESERVATION_ID",
            "reservation_id must look like rsv_<32 hex digits>",
            field="reservation_id",
        )
    return reservation_id
