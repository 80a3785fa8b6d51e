"""Pay-out rules without I/O: states and their transitions, periods, skip reasons, typed rows."""

from __future__ import annotations

import calendar
import enum
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from svckit.errors import InvalidArgument
from svckit.identifiers import EXTERNAL_ID_RULE, is_external_id
from svckit.money import is_known_currency


class PayoutState(enum.StrEnum):
    CREATED = "CREATED"
    RESERVED = "RESERVED"
    TRANSFERRED = "TRANSFERRED"
    IN_TRANSIT = "IN_TRANSIT"
    PAID = "PAID"
    FAILED = "FAILED"
    CANCELED = "CANCELED"


P = PayoutState
FINAL = frozenset({P.FAILED, P.CANCELED})
"""No event changes these. PAID is not final: the bank may return a paid pay-out (PAID → FAILED)."""
SENDING = frozenset({P.CREATED, P.RESERVED, P.TRANSFERRED})
"""Our steps are not done: the run (or, after a crash, the janitor) drives these."""

TRANSITIONS: dict[PayoutState, frozenset[PayoutState]] = {
    P.CREATED: frozenset({P.RESERVED, P.FAILED}),
    P.RESERVED: frozenset({P.TRANSFERRED, P.FAILED}),
    # The PSP's event may beat our record of the payout's id: TRANSFERRED may go straight to an answer.
    P.TRANSFERRED: frozenset({P.IN_TRANSIT, P.PAID, P.FAILED, P.CANCELED}),
    P.IN_TRANSIT: frozenset({P.PAID, P.FAILED, P.CANCELED}),
    P.PAID: frozenset({P.FAILED}),
    P.FAILED: frozenset(),
    P.CANCELED: frozenset(),
}


def can_move(current: PayoutState, target: PayoutState) -> bool:
    return target in TRANSITIONS[current]


class SellerState(enum.StrEnum):
    ACTIVE = "ACTIVE"
    PAYOUTS_PAUSED = "PAYOUTS_PAUSED"
    BLOCKED = "BLOCKED"


class Schedule(enum.StrEnum):
    MONTHLY = "MONTHLY"
    WEEKLY = "WEEKLY"
    MANUAL = "MANUAL"


class SkipReason(enum.StrEnum):
    BELOW_MINIMUM = "BELOW_MINIMUM"
    PAUSED = "PAUSED"
    BLOCKED = "BLOCKED"
    RESERVE = "RESERVE"
    NO_PSP_ACCOUNT = "NO_PSP_ACCOUNT"
    PAYOUTS_NOT_ENABLED = "PAYOUTS_NOT_ENABLED"
    NEGATIVE_BALANCE = "NEGATIVE_BALANCE"
    ALREADY_PAID = "ALREADY_PAID"
    PSP_UNAVAILABLE = "PSP_UNAVAILABLE"


# ---------------------------------------------------------------- periods

_MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")
_WEEK = re.compile(r"^(\d{4})-W(0[1-9]|[1-4]\d|5[0-3])$")


@dataclass(frozen=True)
class Period:
    """A pay-out period: a calendar month (``2026-11``) or an ISO week (``2026-W47``), in UTC."""

    name: str
    schedule: Schedule
    start: datetime
    end: datetime  # exclusive


def parse_period(text: str, now: datetime | None = None, *, ended: bool = True) -> Period:
    """The period named ``text``; INVALID_PERIOD when malformed, PERIOD_NOT_ENDED when it has not ended
    (a run pays a period's sales once they are all in: the current and future periods are refused).
    With ``ended=False`` (statements to date) only a period that has not begun is refused."""
    now = now or datetime.now(UTC)
    if m := _MONTH.match(text or ""):
        year, month = int(m[1]), int(m[2])
        start = datetime(year, month, 1, tzinfo=UTC)
        end = start + timedelta(days=calendar.monthrange(year, month)[1])
        schedule = Schedule.MONTHLY
    elif m := _WEEK.match(text or ""):
        try:
            monday = date.fromisocalendar(int(m[1]), int(m[2]), 1)
        except ValueError:
            raise InvalidArgument(
                "INVALID_PERIOD", f"{text!r} is not an ISO week of its year", field="period"
            ) from None
        start = datetime(monday.year, monday.month, monday.day, tzinfo=UTC)
        end = start + timedelta(days=7)
        schedule = Schedule.WEEKLY
    else:
        raise InvalidArgument(
            "INVALID_PERIOD", "period must be a month (2026-11) or an ISO week (2026-W47)", field="period"
        )
    if start.year < 2000:
        raise InvalidArgument("INVALID_PERIOD", f"{text!r} is before the year 2000", field="period")
    if (end > now) if ended else (start > now):
        raise InvalidArgument(
            "PERIOD_NOT_ENDED",
            f"period {text} has not ended yet (it ends {end.isoformat()}); only ended periods are paid",
            field="period",
        )
    return Period(text, schedule, start, end)


# ---------------------------------------------------------------- sellers


def check_seller_account(value: str) -> str:
    if not is_external_id(value):
        raise InvalidArgument(
            "INVALID_SELLER_ACCOUNT",
            f"seller_account must be {EXTERNAL_ID_RULE}",
            field="seller_account",
        )
    return value


def check_currency(value: str, field_name: str) -> str:
    if not (len(value) == 3 and value.isalpha() and value.isupper()):
        raise InvalidArgument(
            "INVALID_CURRENCY", f"{field_name} must be an upper-case 3-letter code", field=field_name
        )
    if not is_known_currency(value):
        raise InvalidArgument(
            "UNKNOWN_CURRENCY", f"{value!r} is not an ISO 4217 currency code", field=field_name
        )
    return value


@dataclass(frozen=True)
class SellerSettings:
    """What an operator sets on a seller; validated whole by :func:`validate_settings`."""

    seller_account: str
    psp_account: str | None
    payout_currency: str
    schedule: Schedule
    anchor_day: int
    minimums: dict[str, int]
    reserve_bps: int
    reserve_days: int


_PSP_ACCOUNT = re.compile(r"^acct_[A-Za-z0-9]{1,64}$")


def validate_settings(s: SellerSettings) -> SellerSettings:
    check_seller_account(s.seller_account)
    check_currency(s.payout_currency, "payout_currency")
    if s.psp_account is not None and not _PSP_ACCOUNT.match(s.psp_account):
        raise InvalidArgument(
            "INVALID_PSP_ACCOUNT",
            "psp_account must be a connected account id (acct_...)",
            field="psp_account",
        )
    top = 7 if s.schedule is Schedule.WEEKLY else 31
    if not 1 <= s.anchor_day <= top:
        raise InvalidArgument(
            "INVALID_ANCHOR_DAY", f"anchor_day must be between 1 and {top}", field="anchor_day"
        )
    for currency, minimum in s.minimums.items():
        check_currency(currency, "minimum_payouts")
        if minimum < 0:
            raise InvalidArgument(
                "NEGATIVE_MINIMUM", f"the minimum payout in {currency} is negative", field="minimum_payouts"
            )
    if not 0 <= s.reserve_bps <= 10_000:
        raise InvalidArgument(
            "INVALID_RESERVE", "reserve_bps must be between 0 and 10000", field="reserve_bps"
        )
    if not 0 <= s.reserve_days <= 366 or (s.reserve_bps and not s.reserve_days):
        raise InvalidArgument(
            "INVALID_RESERVE",
            "reserve_days must be between 0 and 366, and positive with a reserve",
            field="reserve_days",
        )
    return s


# ---------------------------------------------------------------- rows


@dataclass(frozen=True)
class SellerRow:
    seller_account: str
    psp_account: str | None
    payout_currency: str
    schedule: Schedule
    anchor_day: int
    minimums: dict[str, int]
    reserve_bps: int
    reserve_days: int
    state: SellerState
    state_reason: str
    created_at: datetime
    updated_at: datetime
    psp_payouts_enabled: bool | None = None
    """What the PSP last said: can the connected account receive payouts (None: never asked)."""
    psp_account_checked_at: datetime | None = None
    """When it said so: our read of the account, or the time of its ``account.updated`` event."""

    def settings(self) -> SellerSettings:
        return SellerSettings(
            self.seller_account,
            self.psp_account,
            self.payout_currency,
            self.schedule,
            self.anchor_day,
            dict(self.minimums),
            self.reserve_bps,
            self.reserve_days,
        )


@dataclass(frozen=True)
class PayoutRow:
    payout_id: str
    run_id: str
    seller_account: str
    period: str
    amount_minor: int
    currency: str
    psp_account: str
    state: PayoutState
    reservation_id: str | None
    ledger_tx_id: int | None
    psp_transfer_id: str | None
    psp_payout_id: str | None
    paid_tx_id: int | None
    failure_code: str | None
    failure_message: str | None
    last_error: str | None
    attempts: int
    alerted_at: datetime | None
    created_at: datetime
    updated_at: datetime
    debt_netted_minor: int = 0
    """The seller's debt this pay-out took off their balance before paying ``amount_minor``."""
    net_tx_id: int | None = None


@dataclass(frozen=True)
class TransitionRow:
    from_state: PayoutState | None
    to_state: PayoutState
    cause: str
    detail: str
    created_at: datetime


@dataclass(frozen=True)
class RunItem:
    seller_account: str
    amount_minor: int
    currency: str
    payout_id: str | None = None
    skip_reason: SkipReason | None = None
    detail: str = ""
    available_minor: int = 0
    reserve_held_minor: int = 0
    debt_minor: int = 0
    """The seller's debt (``asset:seller_receivable``) the pay-out nets off before paying."""


@dataclass(frozen=True)
class RunRow:
    run_id: str
    period: str
    dry_run: bool
    state: str
    sellers_total: int
    sellers_done: int
    payouts_created: int
    sellers_skipped: int
    seller_filter: list[str]
    created_at: datetime
    finished_at: datetime | None
    items: list[RunItem] = field(default_factory=list)


def reserve_held(net_recent_minor: int, reserve_bps: int) -> int:
    """The rolling reserve on the recent orders' net: rounded up, so the reserve never holds too little."""
    return -(-net_recent_minor * reserve_bps // 10_000) if net_recent_minor > 0 else 0


class InboxOutcome(enum.StrEnum):
    """What applying a PSP pay-out fact from the inbox came to (NULL in the table until applied)."""

    APPLIED = "APPLIED"  # the pay-out changed
    NO_CHANGE = "NO_CHANGE"  # a duplicate, late or out-of-order answer: the state was past it
    UNKNOWN_PAYOUT = "UNKNOWN_PAYOUT"  # no pay-out of ours has that PSP id or metadata id: alerted
    MISMATCH = "MISMATCH"  # ours, but on another connected account or another PSP payout: alerted


# Facts of one payout with the same PSP time apply paid first: a payout can fail after it was paid,
# never be paid after it failed.
STATUS_RANK = {"paid": 0, "failed": 1, "canceled": 1}


@dataclass(frozen=True)
class InboxFact:
    """ "The PSP says <status> for payout <psp_payout_id>", as recorded by HandlePspEvent or the janitor."""

    event_id: str
    psp_payout_id: str
    payout_id: str | None
    psp_account: str | None
    status: str
    failure_code: str | None
    failure_message: str | None
    psp_created_at: datetime
    cause: str
    attempts: int = 0
