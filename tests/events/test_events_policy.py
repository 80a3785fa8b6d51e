"""The retry policy is a pure function of (attempt, error): pure unit tests, no infrastructure."""

from __future__ import annotations

import itertools
import random

import pytest

from svckit.errors import Aborted, AlreadyExists, FailedPrecondition, InvalidArgument, NotFound, Unavailable
from svckit.events import (
    DeadLetter,
    ErrorClass,
    Retry,
    RetryPolicy,
    TerminalError,
    TransientError,
    Waiting,
    classify,
)


class FakeSqlState(Exception):
    def __init__(self, sqlstate: str) -> None:
        super().__init__(sqlstate)
        self.sqlstate = sqlstate


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (TransientError("x"), ErrorClass.TRANSIENT),
        (TerminalError("x"), ErrorClass.TERMINAL),
        (Unavailable("WALLET_DOWN", "x"), ErrorClass.TRANSIENT),
        (Aborted("IDEMPOTENCY_KEY_IN_USE", "x"), ErrorClass.TRANSIENT),
        (InvalidArgument("BAD", "x"), ErrorClass.TERMINAL),
        (FailedPrecondition("ILLEGAL_TRANSITION", "x"), ErrorClass.TERMINAL),
        (NotFound("ACCOUNT_NOT_FOUND", "x"), ErrorClass.TERMINAL),
        (AlreadyExists("ACCOUNT_ALREADY_EXISTS", "x"), ErrorClass.TERMINAL),
        (ConnectionResetError(), ErrorClass.TRANSIENT),
        (TimeoutError(), ErrorClass.TRANSIENT),
        (FakeSqlState("40001"), ErrorClass.TRANSIENT),  # serialization failure
        (FakeSqlState("40P01"), ErrorClass.TRANSIENT),  # deadlock
        (FakeSqlState("08006"), ErrorClass.TRANSIENT),  # connection failure
        (FakeSqlState("23505"), ErrorClass.TERMINAL),  # unique violation: a payload/data problem
        (ValueError("bad payload"), ErrorClass.TERMINAL),
        (FakeSqlState("22P02"), ErrorClass.TERMINAL),  # invalid text representation
        (RuntimeError("unexpected"), ErrorClass.TRANSIENT),
    ],
)
def test_errors_are_classified(error, expected):
    assert classify(error) is expected


def test_backoff_ceilings_double_then_stay_at_the_cap():
    policy = RetryPolicy(max_attempts=20, base_delay_seconds=0.5, max_delay_seconds=30)
    ceilings = [policy.ceiling(a) for a in range(1, 12)]
    assert ceilings[:6] == [0.5, 1, 2, 4, 8, 16]
    assert ceilings[6:] == [30] * 5
    assert all(b >= a for a, b in itertools.pairwise(ceilings))
    assert policy.ceiling(10_000) == 30  # no overflow for absurd attempt numbers


def test_delays_use_full_jitter_within_the_ceiling_and_the_cap():
    policy = RetryPolicy(max_attempts=50, base_delay_seconds=0.1, max_delay_seconds=5)
    rng = random.Random(7)
    for attempt in range(1, 50):
        delays = [policy.decide(attempt, TransientError("x"), rng.random) for _ in range(200)]
        assert all(isinstance(d, Retry) for d in delays)
        values = [d.delay_seconds for d in delays]
        assert all(0 <= v <= policy.ceiling(attempt) <= 5 for v in values)
        # Full jitter spreads over the whole range, not around the ceiling.
        assert min(values) < policy.ceiling(attempt) * 0.25
        assert max(values) > policy.ceiling(attempt) * 0.75
    assert policy.decide(3, TransientError("x"), lambda: 0.5) == Retry(0.5 * 0.4)


def test_growth_of_the_expected_delay():
    policy = RetryPolicy(max_attempts=10, base_delay_seconds=1, max_delay_seconds=8)
    mid = [policy.decide(a, TransientError("x"), lambda: 0.5).delay_seconds for a in range(1, 7)]
    assert mid == [0.5, 1, 2, 4, 4, 4]


def test_transient_failures_are_dead_lettered_after_max_attempts():
    policy = RetryPolicy(max_attempts=3, base_delay_seconds=1, max_delay_seconds=10)
    assert isinstance(policy.decide(1, TransientError("x")), Retry)
    assert isinstance(policy.decide(2, TransientError("x")), Retry)
    assert policy.decide(3, TransientError("x")) == DeadLetter("attempts_exhausted")
    assert policy.decide(4, TransientError("x")) == DeadLetter("attempts_exhausted")


def test_terminal_failures_are_dead_lettered_at_once():
    policy = RetryPolicy(max_attempts=10)
    assert policy.decide(1, TerminalError("x")) == DeadLetter("terminal")
    assert policy.decide(1, InvalidArgument("BAD", "x")) == DeadLetter("terminal")
    assert policy.decide(1, FailedPrecondition("ILLEGAL", "x")) == DeadLetter("terminal")


def test_invalid_policies_are_refused():
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError):
        RetryPolicy(base_delay_seconds=10, max_delay_seconds=1)


def test_a_waiting_event_is_retried_without_spending_an_attempt_until_its_wait_runs_out():
    """A refund waiting for its order's credit (chaos seed 4): waiting is not failing, so it must
    outlast its order's own attempts; only after ``max_wait_seconds`` does it count again."""
    policy = RetryPolicy(max_attempts=3, base_delay_seconds=1, max_delay_seconds=300, max_wait_seconds=3600)
    for waited in (0.0, 10.0, 600.0, 3599.0):
        decision = policy.decide(3, Waiting("order not settled"), lambda: 0.5, waited_seconds=waited)
        assert isinstance(decision, Retry) and not decision.spends_attempt
        # The polling slows down as the wait grows, within the cap.
        assert 0 < decision.delay_seconds <= min(300, max(1, waited / 4))
    assert policy.decide(3, Waiting("x"), waited_seconds=3601) == DeadLetter("attempts_exhausted")
    assert policy.decide(3, Waiting("x")) == DeadLetter("attempts_exhausted")  # age unknown: counts
    spent = policy.decide(1, Waiting("x"), lambda: 0.5, waited_seconds=3601)
    assert isinstance(spent, Retry) and spent.spends_attempt
    assert classify(Waiting("x")) is ErrorClass.TRANSIENT
