"""Lifecycles as data: which status may follow which, and which action each status allows.

The engine never assigns ``status`` directly; it calls :func:`move`, so an illegal jump is a bug that
surfaces at once rather than a silently inconsistent object.
"""

from __future__ import annotations

from typing import Any

from psp_sim.errors import unexpected_state

_PI_OPEN = {"requires_payment_method", "requires_confirmation", "requires_action"}

PAYMENT_INTENT: dict[str, frozenset[str]] = {
    "requires_payment_method": frozenset(
        {
            "requires_confirmation",
            "requires_action",
            "processing",
            "requires_capture",
            "succeeded",
            "requires_payment_method",
            "canceled",
        }
    ),
    "requires_confirmation": frozenset(
        {
            "requires_action",
            "processing",
            "requires_capture",
            "succeeded",
            "requires_payment_method",
            "canceled",
        }
    ),
    "requires_action": frozenset(
        {"processing", "requires_capture", "succeeded", "requires_payment_method", "canceled"}
    ),
    "processing": frozenset({"requires_capture", "succeeded", "requires_payment_method", "canceled"}),
    "requires_capture": frozenset({"succeeded", "canceled"}),
    "succeeded": frozenset(),
    "canceled": frozenset(),
}

PAYMENT_INTENT_ACTIONS: dict[str, frozenset[str]] = {
    "confirm": frozenset(_PI_OPEN),
    "update": frozenset(_PI_OPEN),
    "cancel": frozenset(_PI_OPEN | {"requires_capture", "processing"}),
    "capture": frozenset({"requires_capture"}),
    "authenticate": frozenset({"requires_action"}),
    "refund": frozenset({"succeeded"}),
}

CHECKOUT_SESSION: dict[str, frozenset[str]] = {
    "open": frozenset({"complete", "expired"}),
    "complete": frozenset(),
    "expired": frozenset(),
}

CHECKOUT_SESSION_ACTIONS: dict[str, frozenset[str]] = {
    "pay": frozenset({"open"}),
    "expire": frozenset({"open"}),
}

REFUND: dict[str, frozenset[str]] = {
    "pending": frozenset({"succeeded", "failed", "canceled", "requires_action"}),
    "requires_action": frozenset({"pending", "succeeded", "failed", "canceled"}),
    # A refund can be reported succeeded and fail later (card 4000000000005126).
    "succeeded": frozenset({"failed"}),
    "failed": frozenset(),
    "canceled": frozenset(),
}

PAYOUT: dict[str, frozenset[str]] = {
    "pending": frozenset({"in_transit", "paid", "failed", "canceled"}),
    "in_transit": frozenset({"paid", "failed"}),
    # Stripe: "a payout can show paid and later become failed".
    "paid": frozenset({"failed"}),
    "failed": frozenset(),
    "canceled": frozenset(),
}

_TABLES = {
    "payment_intent": PAYMENT_INTENT,
    "checkout.session": CHECKOUT_SESSION,
    "refund": REFUND,
    "payout": PAYOUT,
}

_ACTIONS = {
    "payment_intent": (PAYMENT_INTENT_ACTIONS, "PaymentIntent", "payment_intent_unexpected_state"),
    "checkout.session": (CHECKOUT_SESSION_ACTIONS, "Checkout Session", "checkout_session_unexpected_state"),
}


class IllegalTransition(RuntimeError):
    """The engine tried a move its table forbids: a simulator bug, answered as a 500."""


def move(obj: dict[str, Any], new_status: str) -> str:
    """Set ``obj['status']`` if the table allows it; return the previous status."""
    table = _TABLES[obj["object"]]
    old = obj["status"]
    if new_status not in table[old]:
        raise IllegalTransition(f"{obj['object']} {obj['id']}: {old} -> {new_status}")
    obj["status"] = new_status
    return old


def require(obj: dict[str, Any], action: str) -> None:
    """Raise Stripe's 400 ``*_unexpected_state`` when ``action`` is not allowed in the current status."""
    table, noun, code = _ACTIONS[obj["object"]]
    if obj["status"] not in table[action]:
        raise unexpected_state(action, noun, obj["status"], code)
