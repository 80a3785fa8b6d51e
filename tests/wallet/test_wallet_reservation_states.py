"""The reservation state machine as data: forward-only, CLOSED terminal (pure unit tests)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from svckit.errors import FailedPrecondition
from svckit.money import Money
from wallet_svc.domain import (
    RESERVATION_TRANSITIONS,
    Reference,
    ReferenceKind,
    Reservation,
    ReservationState,
    next_reservation_state,
)


def _reservation(state: ReservationState, amount: int, taken: int) -> Reservation:
    now = datetime.now(UTC)
    return Reservation(
        id="rsv_" + "a" * 32,
        seller_id="s",
        state=state,
        amount=Money(amount, "USD"),
        released=Money(taken, "USD"),
        captured=Money(0, "USD"),
        remaining=Money(amount - taken, "USD"),
        reference=Reference(ReferenceKind.PAYOUT, "p"),
        created_at=now,
        updated_at=now,
    )


def test_no_state_leads_back_to_open_and_closed_leads_nowhere():
    assert all(ReservationState.OPEN not in targets for targets in RESERVATION_TRANSITIONS.values())
    assert RESERVATION_TRANSITIONS[ReservationState.CLOSED] == frozenset()
    assert set(RESERVATION_TRANSITIONS) == set(ReservationState)


@pytest.mark.parametrize(
    ("state", "amount", "taken", "take", "expected"),
    [
        (ReservationState.OPEN, 100, 0, 100, ReservationState.CLOSED),
        (ReservationState.OPEN, 100, 0, 40, ReservationState.PARTIALLY_SETTLED),
        (ReservationState.PARTIALLY_SETTLED, 100, 40, 10, ReservationState.PARTIALLY_SETTLED),
        (ReservationState.PARTIALLY_SETTLED, 100, 40, 60, ReservationState.CLOSED),
    ],
)
def test_next_state_follows_what_remains(state, amount, taken, take, expected):
    assert next_reservation_state(_reservation(state, amount, taken), take) is expected


@pytest.mark.parametrize(
    ("state", "amount", "taken", "take"),
    [
        (ReservationState.OPEN, 100, 0, 101),
        (ReservationState.PARTIALLY_SETTLED, 100, 40, 61),
        (ReservationState.CLOSED, 100, 100, 1),
        (ReservationState.CLOSED, 100, 100, 0),
    ],
)
def test_taking_more_than_remains_or_from_a_closed_reservation_is_exhausted(state, amount, taken, take):
    with pytest.raises(FailedPrecondition) as err:
        next_reservation_state(_reservation(state, amount, taken), take)
    assert err.value.reason == "RESERVATION_EXHAUSTED"
