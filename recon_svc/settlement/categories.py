"""Matching of the categories beyond charges, refunds and transfers: disputes and their reversals, refund
failures, transfer reversals, the PSP's payouts to our bank (and their failures), standalone fees and
adjustments. Looks our records up through :class:`~recon_svc.settlement.records.PaymentRecords` and hands them
to the pure rules of :mod:`recon_svc.settlement.classify`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from recon_svc.settlement.classify import (
    ADJUSTMENT_CATEGORIES,
    DISPUTE_CATEGORIES,
    FEE_CATEGORIES,
    PLATFORM_PAYOUT_CATEGORIES,
    REFUND_FAILURE_CATEGORIES,
    TRANSFER_REVERSAL_CATEGORIES,
    RowOutcome,
    classify_adjustment,
    classify_dispute,
    classify_fee,
    classify_platform_payout,
    classify_refund_failure,
    classify_transfer_reversal,
)
from recon_svc.settlement.parse import SettlementRow
from recon_svc.settlement.records import OrderFixer, PaymentRecords
from svckit.errors import DomainError


async def match_other(row: SettlementRow, records: PaymentRecords) -> RowOutcome:
    """The outcome of a row of one of :data:`~recon_svc.settlement.classify.OTHER_CATEGORIES`."""
    category = row.reporting_category
    if category in DISPUTE_CATEGORIES:
        # The dispute's row carries the disputed charge's PaymentIntent and our metadata, like the charge's.
        orders = await records.checkout_for(row)
        # Compared with the payment service's record of the dispute when the checkout is ours; its PaymentIntent is
        # the row's, or (a file without that column) the one our orders were charged with.
        intent = (
            (row.payment_intent_id or next((o.psp_reference for o in orders if o.psp_reference), ""))
            if orders
            else ""
        )
        disputes = await records.disputes_for(intent) if intent else None
        return classify_dispute(row, orders, disputes)
    if category in REFUND_FAILURE_CATEGORIES:
        return classify_refund_failure(row, await records.refund_for(row))
    if category in TRANSFER_REVERSAL_CATEGORIES:
        payout_id = row.metadata.get("transfer.payout_id", "")
        return classify_transfer_reversal(
            row, payout_id, await records.payout_for(payout_id) if payout_id else None
        )
    if category in PLATFORM_PAYOUT_CATEGORIES:
        return classify_platform_payout(row)
    if category in FEE_CATEGORIES:
        return classify_fee(row)
    if category in ADJUSTMENT_CATEGORIES:
        return classify_adjustment(row)
    raise ValueError(f"{category!r} is not one of the other categories")


async def redrive_settlement(
    fixer: OrderFixer, order_id: str, settle: Callable[[str, str, str], Awaitable[None]]
) -> bool:
    """SETTLEMENT_NOT_BOOKED's standard procedure: the payment service re-emits the order's settlement event,
    which its consumer applies under the order's own idempotency keys (a half already applied changes
    nothing). ``settle(state, action, detail)`` records the outcome on the mismatch; True when fixed."""
    try:
        _, redriven = await fixer.redrive(order_id)
    except DomainError as exc:
        await settle("open", "auto_fix_failed", f"{exc.reason}: {exc.message}")
        return False
    detail = (
        "payment service re-drove the order's settlement (same idempotency keys)"
        if redriven
        else "the order's settlement had landed meanwhile"
    )
    await settle("auto_fixed", "auto_fixed", detail)
    return True
