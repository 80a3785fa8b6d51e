"""Pure pay-in domain: order states and their transition table, commission, PSP outcome mapping.

Nothing here touches a database, the network or gRPC, so every rule is unit-testable.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import assert_never

from payment_svc.psp_objects import PaymentIntentView, payment_intent


class OrderState(enum.StrEnum):
    NOT_STARTED = "NOT_STARTED"
    EXECUTING = "EXECUTING"
    PENDING = "PENDING"
    SUCCESS = "SUCCESS"
    FAILED = "FAILED"
    UNKNOWN = "UNKNOWN"
    PARTIALLY_REFUNDED = "PARTIALLY_REFUNDED"
    REFUNDED = "REFUNDED"


S = OrderState

# The whole lifecycle in one table: a move not listed here is refused, so a late or duplicate
# webhook can never take an order backwards. UNKNOWN (a PSP call whose outcome we did not see) may
# resolve to anything the PSP says; it is never treated as FAILED by itself.
TRANSITIONS: dict[OrderState, frozenset[OrderState]] = {
    S.NOT_STARTED: frozenset({S.EXECUTING, S.PENDING, S.SUCCESS, S.FAILED, S.UNKNOWN}),
    S.EXECUTING: frozenset({S.PENDING, S.SUCCESS, S.FAILED, S.UNKNOWN}),
    # PENDING → EXECUTING: an operator approved an order held for risk review.
    S.PENDING: frozenset({S.EXECUTING, S.SUCCESS, S.FAILED, S.UNKNOWN}),
    S.UNKNOWN: frozenset({S.EXECUTING, S.PENDING, S.SUCCESS, S.FAILED}),
    S.SUCCESS: frozenset({S.PARTIALLY_REFUNDED, S.REFUNDED}),
    S.PARTIALLY_REFUNDED: frozenset({S.PARTIALLY_REFUNDED, S.REFUNDED}),
    S.FAILED: frozenset(),
    S.REFUNDED: frozenset(),
}

# States the janitor revisits: the PSP may know more than we do.
UNCERTAIN = frozenset({S.NOT_STARTED, S.EXECUTING, S.PENDING, S.UNKNOWN})
CAPTURED = frozenset({S.SUCCESS, S.PARTIALLY_REFUNDED, S.REFUNDED})


def can_move(current: OrderState, target: OrderState) -> bool:
    return target in TRANSITIONS[current]


def is_terminal(state: OrderState) -> bool:
    match state:
        case S.FAILED | S.REFUNDED:
            return True
        case S.NOT_STARTED | S.EXECUTING | S.PENDING | S.UNKNOWN | S.SUCCESS | S.PARTIALLY_REFUNDED:
            return False
        case _:
            assert_never(state)


class PendingReason(enum.StrEnum):
    RISK_REVIEW = "risk_review"
    AUTHENTICATION = "authentication"  # 3-D Secure
    PSP_PROCESSING = "psp_processing"


# The PSP moves some currencies in coarser steps than ISO 4217's minor unit (Stripe: three-decimal
# currencies only to the hundredth): an amount between steps would be refused by the PSP after the
# order was stored, so it is refused up front.
_PSP_STEPS: dict[str, int] = {"BHD": 10, "JOD": 10, "KWD": 10, "OMR": 10, "TND": 10}


def psp_step(currency: str) -> int:
    """The smallest amount, in minor units, that the PSP charges or refunds in ``currency``."""
    return _PSP_STEPS.get(currency.upper(), 1)


def commission_minor(amount_minor: int, rate_bps: int) -> int:
    """Platform commission in minor units: ``rate_bps`` basis points of the amount, half-up, in integers."""
    if amount_minor < 0 or not 0 <= rate_bps <= 10_000:
        raise ValueError("amount must be >= 0 and the rate between 0 and 10000 bps")
    return (amount_minor * rate_bps + 5_000) // 10_000


@dataclass(frozen=True)
class PspOutcome:
    """What a PSP call told us about one payment, already in our terms."""

    state: OrderState
    psp_reference: str | None = None
    failure_code: str | None = None
    failure_message: str | None = None
    next_action_url: str | None = None
    pending_reason: PendingReason | None = None


# PaymentIntent status → our state. `requires_payment_method` after a confirmation attempt means the
# attempt failed; `canceled` is final.
PI_STATUS_TO_STATE: dict[str, OrderState] = {
    "succeeded": S.SUCCESS,
    "requires_action": S.PENDING,
    "processing": S.PENDING,
    "requires_capture": S.PENDING,
    "requires_confirmation": S.EXECUTING,
    "requires_payment_method": S.FAILED,
    "canceled": S.FAILED,
}


def outcome_from_payment_intent(pi: dict, direct_mode: bool) -> PspOutcome:
    """Map a PaymentIntent object (as the PSP sends it) to our outcome; see :func:`outcome_of`."""
    return outcome_of(payment_intent(pi), direct_mode)


def outcome_of(pi: PaymentIntentView, direct_mode: bool) -> PspOutcome:
    """Map a PaymentIntent to our outcome.

    In hosted mode a failed attempt is not final — the buyer may try another card on the page —
    so it keeps the order EXECUTING; only the session's expiry fails it.
    """
    status = pi.status
    state = PI_STATUS_TO_STATE.get(status, S.UNKNOWN)
    if state is S.FAILED and not direct_mode:
        # The Checkout Session decides a hosted payment's end (paid or expired), not one attempt.
        state = S.EXECUTING
    next_url = None
    reason = None
    if status == "requires_action":
        next_url = pi.next_action_url
        reason = PendingReason.AUTHENTICATION
    elif status in ("processing", "requires_capture"):
        reason = PendingReason.PSP_PROCESSING
    code = None
    message = None
    if state is S.FAILED and status == "canceled":
        code = pi.cancellation_reason or "canceled"
        last = f"; last attempt: {pi.last_error_message}" if pi.last_error_message else ""
        message = f"payment intent canceled ({code}){last}"
    elif state is S.FAILED:
        code = pi.last_error_code or "failed"
        message = pi.last_error_message or f"payment {status}"
    return PspOutcome(state, pi.id, code, message, next_url, reason)
