"""The PSP translator: the one place that reads Stripe objects (the dicts the PSP port returns, a
declined call's PaymentIntent, and webhook event payloads) and turns them into typed values.

No use case indexes a Stripe dict: each reads the views below. A field of the wrong JSON type reads as
absent, as the dict code that preceded this module treated it. No amount is read back from the PSP's
objects (see ``psp.stripe_amount``), so the views carry none, but a dispute's: only the PSP knows
it (``psp.iso_amount`` converts it back).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from payment_svc.psp_events import (
    ACCOUNT_EVENTS,
    CHECKOUT_OUTCOME_EVENTS,
    DISPUTE_EVENTS,
    OUTCOME_EVENTS,
    PAYOUT_EVENTS,
    REFUND_EVENTS,
)


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _dict(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def _metadata(value: Any) -> Mapping[str, str]:
    """Our metadata keys: only non-empty strings count."""
    return {k: v for k, v in _dict(value).items() if isinstance(v, str) and v}


def _id_of(value: Any) -> str | None:
    """An expandable reference: the id itself, or the expanded object's id."""
    return _str(value.get("id")) if isinstance(value, dict) else _str(value)


@dataclass(frozen=True)
class PaymentIntentView:
    id: str | None
    status: str
    metadata: Mapping[str, str] = field(default_factory=dict)
    last_error_code: str | None = None  # the decline code, else the error code
    last_error_message: str | None = None
    cancellation_reason: str | None = None
    next_action_url: str | None = None  # where the buyer authenticates (3-D Secure)

    @property
    def payment_order_ids(self) -> list[str]:
        """Our orders the metadata names: a checkout's ``payment_order_ids`` (comma-separated; absent
        when they did not fit), or the one ``payment_order_id`` of a PaymentIntent made per order
        before direct mode charged once per checkout."""
        listed = self.metadata.get("payment_order_ids") or self.metadata.get("payment_order_id") or ""
        return [order_id for order_id in listed.split(",") if order_id]


@dataclass(frozen=True)
class CheckoutSessionView:
    id: str | None
    status: str | None
    paid: bool  # payment_status is paid or no_payment_required
    payment_intent_id: str | None
    checkout_id: str | None  # ours: client_reference_id, else metadata.checkout_id
    customer_email: str | None = None  # what the buyer typed on the hosted page (customer_details)


@dataclass(frozen=True)
class RefundView:
    id: str | None
    status: str | None
    refund_id: str | None  # ours, from metadata
    failure_reason: str | None


@dataclass(frozen=True)
class AccountView:
    """A Connect account: whether the PSP lets it receive payouts."""

    id: str | None
    payouts_enabled: bool


@dataclass(frozen=True)
class TransferView:
    id: str | None
    payout_id: str | None  # ours, from metadata


@dataclass(frozen=True)
class PayoutView:
    id: str | None
    status: str | None  # pending, in_transit, paid, failed, canceled
    payout_id: str | None  # ours, from metadata
    account: str | None  # the connected account it was made on (the event's ``account``)
    failure_code: str | None
    failure_message: str | None


@dataclass(frozen=True)
class DisputeView:
    id: str | None
    payment_intent_id: str | None
    amount_minor: int | None
    """The disputed amount as the PSP states it (a dispute may cover part of a charge)."""
    currency: str | None  # upper-case ISO 4217
    status: str | None
    reason: str | None
    evidence_due_by: int | None  # Unix seconds


PspObject = PaymentIntentView | CheckoutSessionView | RefundView | PayoutView | DisputeView | AccountView


@dataclass(frozen=True)
class PspEvent:
    id: str  # the PSP's event id, "" when absent
    type: str
    object: PspObject | None  # None for a type pay-in does not act on
    created: int | None = None  # the PSP's event time, Unix seconds


class NotAnEvent(ValueError):
    """The payload is not a PSP event with a ``data.object``."""


def payment_intent(obj: Any) -> PaymentIntentView:
    pi = _dict(obj)
    error = _dict(pi.get("last_payment_error"))
    action = _dict(pi.get("next_action"))
    status = pi.get("status")
    return PaymentIntentView(
        id=_str(pi.get("id")),
        status=status if isinstance(status, str) else "",
        metadata=_metadata(pi.get("metadata")),
        last_error_code=_str(error.get("decline_code")) or _str(error.get("code")),
        last_error_message=_str(error.get("message")),
        cancellation_reason=_str(pi.get("cancellation_reason")),
        next_action_url=_str(_dict(action.get("redirect_to_url")).get("url")) or _str(action.get("url")),
    )


def dispute(obj: Any) -> DisputeView:
    dp = _dict(obj)
    amount = dp.get("amount")
    due = _dict(dp.get("evidence_details")).get("due_by")
    currency = _str(dp.get("currency"))
    return DisputeView(
        id=_str(dp.get("id")),
        payment_intent_id=_id_of(dp.get("payment_intent")),
        amount_minor=amount if isinstance(amount, int) and not isinstance(amount, bool) else None,
        currency=currency.upper() if currency else None,
        status=_str(dp.get("status")),
        reason=_str(dp.get("reason")),
        evidence_due_by=due if isinstance(due, int) and not isinstance(due, bool) else None,
    )


def checkout_session(obj: Any) -> CheckoutSessionView:
    session = _dict(obj)
    return CheckoutSessionView(
        id=_str(session.get("id")),
        status=_str(session.get("status")),
        paid=session.get("payment_status") in ("paid", "no_payment_required"),
        payment_intent_id=_id_of(session.get("payment_intent")),
        checkout_id=_str(session.get("client_reference_id"))
        or _metadata(session.get("metadata")).get("checkout_id"),
        customer_email=_str(_dict(session.get("customer_details")).get("email")),
    )


def refund(obj: Any) -> RefundView:
    rf = _dict(obj)
    return RefundView(
        id=_str(rf.get("id")),
        status=_str(rf.get("status")),
        refund_id=_metadata(rf.get("metadata")).get("refund_id"),
        failure_reason=_str(rf.get("failure_reason")),
    )


def account(obj: Any) -> AccountView:
    acct = _dict(obj)
    return AccountView(id=_str(acct.get("id")), payouts_enabled=acct.get("payouts_enabled") is True)


def transfer(obj: Any) -> TransferView:
    tr = _dict(obj)
    return TransferView(id=_str(tr.get("id")), payout_id=_metadata(tr.get("metadata")).get("payout_id"))


def payout(obj: Any, account: Any = None) -> PayoutView:
    po = _dict(obj)
    return PayoutView(
        id=_str(po.get("id")),
        status=_str(po.get("status")),
        payout_id=_metadata(po.get("metadata")).get("payout_id"),
        account=_str(account),
        failure_code=_str(po.get("failure_code")),
        failure_message=_str(po.get("failure_message")),
    )


def event(event_type: str, payload: bytes) -> PspEvent:
    """A webhook payload as a typed event; ``event_type`` (the header's) wins over the body's type.
    Raises NotAnEvent when the payload is not JSON with an object at ``data.object``."""
    try:
        body = json.loads(payload)
        obj = body["data"]["object"]
    except (ValueError, KeyError, TypeError):
        raise NotAnEvent("payload is not a PSP event with data.object") from None
    if not isinstance(obj, dict):
        raise NotAnEvent("the event's data.object is not an object")
    kind = event_type or body.get("type", "")
    kind = kind if isinstance(kind, str) else ""
    view: PspObject | None = None
    if kind in OUTCOME_EVENTS:
        view = payment_intent(obj)
    elif kind in CHECKOUT_OUTCOME_EVENTS:
        view = checkout_session(obj)
    elif kind in REFUND_EVENTS:
        view = refund(obj)
    elif kind in PAYOUT_EVENTS:
        view = payout(obj, body.get("account"))
    elif kind in DISPUTE_EVENTS:
        view = dispute(obj)
    elif kind in ACCOUNT_EVENTS:
        view = account(obj)
    event_id = body.get("id", "")
    created = body.get("created")
    return PspEvent(
        event_id if isinstance(event_id, str) else "",
        kind,
        view,
        created if isinstance(created, int) and not isinstance(created, bool) else None,
    )
