"""Typed access to what a stripe SDK exception carries from the simulator's error answer.

The SDK types these parts optional; the simulator's 4xx and 5xx answers always have them, so a test
that reads one fails here, by name, if it is missing."""

from __future__ import annotations

import stripe


def error_of(exc: stripe.StripeError) -> stripe.ErrorObject:
    """The answer's error object."""
    if exc.error is None:
        raise AssertionError(f"the answer has no error object: {exc!r}")
    return exc.error


def intent_id_of(exc: stripe.StripeError) -> str:
    """The id of the PaymentIntent a card error names."""
    intent = error_of(exc).payment_intent
    if intent is None:
        raise AssertionError(f"the error names no payment_intent: {exc!r}")
    return intent.id


def headers_of(exc: stripe.StripeError) -> dict[str, str]:
    """The answer's HTTP headers (the SDK stores ``headers or {}``, so never None)."""
    return exc.headers or {}
