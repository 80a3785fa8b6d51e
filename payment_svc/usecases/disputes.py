"""Disputes: the PSP's ``charge.dispute.created``, ``.updated`` and ``.closed`` events recorded on the checkout
whose charge the buyer's bank disputes (one PaymentIntent per checkout), a line in each of its orders' history,
and an event on the backbone (``payment.dispute.<created|updated|closed>``) in the same transaction.

No state of an order moves and no money is booked here: the chargeback's withdrawal (and a won dispute's
reinstatement) is in the PSP's settlement file, which reconciliation books. A final status (won, lost,
warning_closed) is never replaced by a late or redelivered event; HandlePspEvent's idempotency on the event id
makes a redelivery a replay.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from payment_svc.psp import iso_amount
from payment_svc.psp_objects import DisputeView
from payment_svc.uow import UnitOfWork
from svckit.errors import InvalidArgument
from svckit.logging import get_logger
from svckit.money import is_known_currency

log = get_logger(__name__)

FINAL = frozenset({"won", "lost", "warning_closed"})
EVENT_TYPES = {
    "charge.dispute.created": "payment.dispute.created",
    "charge.dispute.updated": "payment.dispute.updated",
    "charge.dispute.closed": "payment.dispute.closed",
}


def _checked(view: DisputeView) -> tuple[str, str, int, str]:
    """(dispute id, PaymentIntent, amount in ISO minor units, currency), or INVALID_PAYLOAD."""
    currency = view.currency or ""
    amount = iso_amount(view.amount_minor, currency) if view.amount_minor is not None and currency else None
    if not (view.id and view.payment_intent_id and is_known_currency(currency) and amount is not None):
        raise InvalidArgument(
            "INVALID_PAYLOAD", "a dispute event needs id, payment_intent, amount and a known currency",
            field="payload",
        )  # fmt: skip
    if amount < 0:
        raise InvalidArgument("INVALID_PAYLOAD", "a dispute's amount is negative", field="payload")
    return view.id, view.payment_intent_id, amount, currency


async def apply_dispute(
    uow: UnitOfWork, view: DisputeView, kind: str, event_id: str, stream: str
) -> list[str]:
    """Record one dispute event in the caller's transaction; the orders whose history got a line (none when
    the charge is not ours or the event changes nothing)."""
    dispute_id, intent_id, amount, currency = _checked(view)
    orders = await uow.repo.orders_by_psp_reference(intent_id, for_update=True)
    if not orders:
        log.info("dispute on a payment that is not ours", dispute=dispute_id, payment_intent=intent_id)
        return []
    checkout_id = orders[0].checkout_id
    before = await uow.repo.get_dispute(dispute_id, for_update=True)
    status = view.status or "needs_response"
    if before is not None and before.status in FINAL:
        return []  # a late event never reopens a closed dispute
    if before is not None and before.status == status and kind != "charge.dispute.closed":
        return []  # nothing new (the evidence itself stays at the PSP)
    due = dt.datetime.fromtimestamp(view.evidence_due_by, dt.UTC) if view.evidence_due_by else None
    values: dict[str, Any] = {
        "dispute_id": dispute_id,
        "checkout_id": checkout_id,
        "payment_intent_id": intent_id,
        "amount_minor": amount,
        "currency": currency,
        "status": status,
        "reason": view.reason or "",
        "evidence_due_at": due,
        "last_event_id": event_id,
    }
    await uow.repo.save_dispute(values)
    detail = (
        f"dispute {dispute_id} {status}: {view.reason or 'no reason given'}, {amount} {currency} minor units"
    )
    if due is not None and status not in FINAL:
        detail += f", evidence due by {due.isoformat()}"
    for order in orders:
        await uow.repo.add_transition(
            order.payment_order_id, order.state, order.state, f"psp_event:{kind}", detail
        )
    await uow.add_event(
        stream=stream,
        aggregate_id=checkout_id,
        type=EVENT_TYPES.get(kind, "payment.dispute.updated"),
        payload={
            "dispute_id": dispute_id,
            "checkout_id": checkout_id,
            "payment_intent_id": intent_id,
            "payment_order_ids": [o.payment_order_id for o in orders],
            "status": status,
            "reason": view.reason or "",
            "amount_minor": amount,
            "currency": currency,
            "evidence_due_by": due.isoformat() if due else None,
            "psp_event_id": event_id,
        },
    )
    return [o.payment_order_id for o in orders]
