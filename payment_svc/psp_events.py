"""The PSP event types pay-in acts on. Dependency-free, so deployment tooling can subscribe the
webhook endpoint to exactly these (Stripe's ``enabled_events``)."""

from __future__ import annotations

# PaymentIntent events that report an outcome. Others (``payment_intent.created`` above all) carry
# the object as it was before confirmation and would read as "not paid yet" or even "failed".
OUTCOME_EVENTS = frozenset(
    {
        "payment_intent.succeeded",
        "payment_intent.payment_failed",
        "payment_intent.requires_action",
        "payment_intent.processing",
        "payment_intent.canceled",
        "payment_intent.amount_capturable_updated",
    }
)

CHECKOUT_OUTCOME_EVENTS = frozenset(
    {
        "checkout.session.completed",
        "checkout.session.async_payment_succeeded",
        "checkout.session.expired",
        "checkout.session.async_payment_failed",
    }
)
REFUND_EVENTS = frozenset({"refund.created", "refund.updated", "refund.failed", "charge.refund.updated"})

# A connected account's payout reached its end (``paid`` may still turn ``failed`` later).
PAYOUT_EVENTS = frozenset({"payout.paid", "payout.failed", "payout.canceled"})

# A connected account changed (``payouts_enabled`` among others): a run trusts what it said for a while
# instead of reading the account (payment_svc/payouts/run.py).
ACCOUNT_EVENTS = frozenset({"account.updated"})

# A buyer's bank disputes a charge: recorded on the checkout and its orders' history (no money moves here; the
# PSP's withdrawal is in its settlement file, which reconciliation books).
DISPUTE_EVENTS = frozenset({"charge.dispute.created", "charge.dispute.updated", "charge.dispute.closed"})

HANDLED_EVENT_TYPES = (
    OUTCOME_EVENTS | CHECKOUT_OUTCOME_EVENTS | REFUND_EVENTS | PAYOUT_EVENTS | ACCOUNT_EVENTS | DISPUTE_EVENTS
)
"""Every PSP event type that can change our state. Subscribe the webhook endpoint to these only
(Stripe's ``enabled_events``): any other type is acknowledged without a database round trip."""


def handles_event_type(event_type: str) -> bool:
    return event_type in HANDLED_EVENT_TYPES
