"""Rules of settlement reconciliation: each file row against our records, every difference a mismatch.

Transport-free and pure: the caller looks our records up (payment service, pay-outs) and hands them in. Each
difference is its own :class:`Mismatch` with a stable ``code``, one of the seeds' three classifications, and the
field-level difference ours vs theirs; offsetting differences are never netted (two rows off by +1 and -1 are two
mismatches). A payment of ours the file has not reached is ``pending`` until the grace period has passed.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from recon_svc.settlement.parse import SettlementRow


class Classification(enum.StrEnum):
    AUTO_FIXABLE = "auto_fixable"
    MANUAL = "manual"
    UNCLASSIFIED = "unclassified"


class Code(enum.StrEnum):
    """Stable mismatch codes; each is always raised with the classification in :data:`CLASSIFICATION`."""

    PSP_CHARGED_ORDER_NOT_SUCCESS = "PSP_CHARGED_ORDER_NOT_SUCCESS"
    """The PSP settled a charge for an order we do not hold as captured (a lost webhook, an unknown outcome)."""
    SETTLEMENT_NOT_BOOKED = "SETTLEMENT_NOT_BOOKED"
    """Our order succeeded but its wallet or ledger update is missing: settlement is re-driven."""
    FEE_DIFFERS = "FEE_DIFFERS"
    """The PSP's fee differs from what we expect by no more than the tolerance: the difference is posted."""
    FEE_DIFFERS_BEYOND_TOLERANCE = "FEE_DIFFERS_BEYOND_TOLERANCE"
    AMOUNT_DIFFERS = "AMOUNT_DIFFERS"
    CURRENCY_DIFFERS = "CURRENCY_DIFFERS"
    REFUND_NOT_OURS = "REFUND_NOT_OURS"
    """A refund at the PSP (made in its dashboard, say) that we never recorded."""
    DISPUTE_NOT_RECORDED = "DISPUTE_NOT_RECORDED"
    """A dispute (or its reversal) at the PSP on a charge we have no record of."""
    DISPUTE_RECORD_MISSING = "DISPUTE_RECORD_MISSING"
    """A dispute (or its reversal) at the PSP on our checkout that the payment service has no record of (its
    ``charge.dispute.*`` webhook was lost)."""
    DISPUTE_STATUS_DIFFERS = "DISPUTE_STATUS_DIFFERS"
    """The payment service's dispute has a status the row contradicts (funds withdrawn from an inquiry, or
    reinstated for a dispute not won)."""
    REFUND_FAILED_AT_PSP = "REFUND_FAILED_AT_PSP"
    """The PSP says our refund failed (the money came back) while we hold it as succeeded."""
    PLATFORM_PAYOUT_FAILED = "PLATFORM_PAYOUT_FAILED"
    """The PSP's payout of our balance to our bank came back (a closed or wrong bank account)."""
    PSP_ADJUSTMENT = "PSP_ADJUSTMENT"
    """An adjustment the PSP made to our balance: booked as it says, for a person to confirm."""
    PAYOUT_NOT_IN_BOOKS = "PAYOUT_NOT_IN_BOOKS"
    DUPLICATE_ROW = "DUPLICATE_ROW"
    """The same balance transaction twice (in one file, or again with other content in a later file)."""
    UNMATCHED_ROW = "UNMATCHED_ROW"
    """A row that matches nothing of ours."""
    MISSING_FROM_PSP = "MISSING_FROM_PSP"
    """Our success or refund is not in the PSP's files past the grace period."""
    # The per-record internal checks (recon_svc/record_checks.py): our records against our own books.
    LEDGER_TRANSACTION_MISSING = "LEDGER_TRANSACTION_MISSING"
    """Our successful order, succeeded refund or paid pay-out has no ledger transaction (net of reversals)."""
    WALLET_MOVEMENT_MISSING = "WALLET_MOVEMENT_MISSING"
    """Our successful order, succeeded refund or paid pay-out has no wallet movement (net of undos)."""
    LEDGER_TRANSACTION_UNEXPECTED = "LEDGER_TRANSACTION_UNEXPECTED"
    """A ledger transaction names an order, refund or pay-out that is no success, refund or pay-out of ours,
    or an order or refund has more than its one transaction."""
    LEDGER_TRANSACTION_DIFFERS = "LEDGER_TRANSACTION_DIFFERS"
    """Our order's, refund's or pay-out's one ledger transaction has another amount (its debits) or currency."""
    WALLET_MOVEMENT_DIFFERS = "WALLET_MOVEMENT_DIFFERS"
    """Our order's, refund's or pay-out's wallet movement has another amount, currency or seller."""
    WALLET_LEDGER_DIFFERS = "WALLET_LEDGER_DIFFERS"
    """A seller's wallet (available + reserved) is not its ledger payable account (or one of the two is missing)."""
    WALLET_MOVEMENT_UNEXPECTED = "WALLET_MOVEMENT_UNEXPECTED"
    """A wallet movement names an order, refund or pay-out that is no success, refund or pay-out of ours, or an
    order or refund has more than its one movement."""


CLASSIFICATION: Mapping[Code, Classification] = {
    Code.PSP_CHARGED_ORDER_NOT_SUCCESS: Classification.AUTO_FIXABLE,
    Code.SETTLEMENT_NOT_BOOKED: Classification.AUTO_FIXABLE,
    Code.FEE_DIFFERS: Classification.AUTO_FIXABLE,
    Code.FEE_DIFFERS_BEYOND_TOLERANCE: Classification.MANUAL,
    Code.AMOUNT_DIFFERS: Classification.MANUAL,
    Code.CURRENCY_DIFFERS: Classification.MANUAL,
    Code.REFUND_NOT_OURS: Classification.MANUAL,
    Code.DISPUTE_NOT_RECORDED: Classification.MANUAL,
    # Manual: the standard procedure (fetch the dispute from the PSP and record it) has no payment-service RPC
    # to drive (a dispute is recorded from its webhook only), so a person replays the PSP's event or records it.
    Code.DISPUTE_RECORD_MISSING: Classification.MANUAL,
    Code.DISPUTE_STATUS_DIFFERS: Classification.MANUAL,
    Code.REFUND_FAILED_AT_PSP: Classification.MANUAL,
    Code.PLATFORM_PAYOUT_FAILED: Classification.MANUAL,
    Code.PSP_ADJUSTMENT: Classification.MANUAL,
    Code.PAYOUT_NOT_IN_BOOKS: Classification.MANUAL,
    Code.DUPLICATE_ROW: Classification.MANUAL,
    Code.MISSING_FROM_PSP: Classification.MANUAL,
    Code.UNMATCHED_ROW: Classification.UNCLASSIFIED,
    # Manual, not re-driven: RedriveSettlement trusts the order's wallet/ledger flags, and a record the books
    # lack while its flags say applied (or a book item nothing of ours explains) is beyond what it can see; an
    # order whose flags say unapplied is the settlement run's SETTLEMENT_NOT_BOOKED, which is re-driven.
    Code.LEDGER_TRANSACTION_MISSING: Classification.MANUAL,
    Code.WALLET_MOVEMENT_MISSING: Classification.MANUAL,
    Code.LEDGER_TRANSACTION_UNEXPECTED: Classification.MANUAL,
    Code.WALLET_MOVEMENT_UNEXPECTED: Classification.MANUAL,
    # Manual: the books already hold an item for the record, so re-driving replays it and changes nothing; which
    # side is wrong (the record or the posting) needs a person, and a correction is a new transaction.
    Code.LEDGER_TRANSACTION_DIFFERS: Classification.MANUAL,
    Code.WALLET_MOVEMENT_DIFFERS: Classification.MANUAL,
    Code.WALLET_LEDGER_DIFFERS: Classification.MANUAL,
}

# Categories that are activity on our platform account and match a record of the payment service; the rest
# (transfers, payouts, fees, adjustments...) match pay-outs or are reported as unmatched for a person.
CHARGE_CATEGORIES = frozenset({"charge"})
REFUND_CATEGORIES = frozenset({"refund", "partial_capture_reversal"})
# A pay-out sends a seller's money to its connected account with a Connect transfer (our payout id in its
# metadata); the payout to the bank happens in the connected account, so it is not in the platform's file.
TRANSFER_CATEGORIES = frozenset({"transfer"})
# Matched by the dispatch in categories.py (the three groups above stay in pipeline.py).
DISPUTE_CATEGORIES = frozenset({"dispute", "dispute_reversal"})
REFUND_FAILURE_CATEGORIES = frozenset({"refund_failure"})
TRANSFER_REVERSAL_CATEGORIES = frozenset({"transfer_reversal"})
PLATFORM_PAYOUT_CATEGORIES = frozenset({"payout", "payout_reversal"})
"""The PSP paying our balance out to our bank (and such a payout coming back)."""
FEE_CATEGORIES = frozenset({"fee", "network_cost"})
"""Fees the PSP charges outside a charge (account, Radar, network costs)."""
ADJUSTMENT_CATEGORIES = frozenset({"other_adjustment"})
OTHER_CATEGORIES = (
    DISPUTE_CATEGORIES
    | REFUND_FAILURE_CATEGORIES
    | TRANSFER_REVERSAL_CATEGORIES
    | PLATFORM_PAYOUT_CATEGORIES
    | FEE_CATEGORIES
    | ADJUSTMENT_CATEGORIES
)
"""Every other category (issuing, top-ups, financing, climate, tax...) is a product we do not use: a row of it
is UNMATCHED_ROW for a person."""
FAILED_PAYOUT_STATES = frozenset({"FAILED", "CANCELED"})


class OrderState(enum.StrEnum):
    NOT_STARTED = "NOT_STARTED"
    EXECUTING = "EXECUTING"
    PENDING = "PENDING"
    SUCCESS = "SUCCESS"
    FAILED = "FAILED"
    UNKNOWN = "UNKNOWN"
    PARTIALLY_REFUNDED = "PARTIALLY_REFUNDED"
    REFUNDED = "REFUNDED"


CAPTURED = frozenset({OrderState.SUCCESS, OrderState.PARTIALLY_REFUNDED, OrderState.REFUNDED})


# Not frozen: a frozen dataclass pays object.__setattr__ per field, and a settlement run builds one per order.
@dataclass(slots=True)
class OurOrder:
    payment_order_id: str
    psp_reference: str
    """The PaymentIntent id, empty when the PSP's answer never reached us."""
    amount_minor: int
    currency: str
    state: OrderState
    created_at: dt.datetime
    wallet_updated: bool
    ledger_updated: bool
    checkout_id: str = ""
    """The checkout (one PaymentIntent, one charge row for all its orders)."""


@dataclass(frozen=True, slots=True)
class OurRefund:
    refund_id: str
    payment_order_id: str
    psp_reference: str
    amount_minor: int
    currency: str
    succeeded: bool
    created_at: dt.datetime


@dataclass(frozen=True, slots=True)
class OurPayout:
    payout_id: str
    state: str
    """The pay-out's state name (CREATED, RESERVED, TRANSFERRED, IN_TRANSIT, PAID, FAILED, CANCELED)."""
    amount_minor: int
    currency: str
    psp_transfer_id: str
    """The PSP transfer we recorded; empty when the pay-out never got (or never heard back about) one."""
    created_at: dt.datetime | None = None


@dataclass(frozen=True, slots=True)
class OurDispute:
    """A dispute as the payment service recorded it from the PSP's ``charge.dispute.*`` events."""

    dispute_id: str
    amount_minor: int
    currency: str
    status: str


WITHDRAWN_STATUSES = frozenset({"needs_response", "under_review", "won", "lost"})
"""Statuses of a dispute whose funds the PSP withdrew (an inquiry, ``warning_*``, withdraws nothing)."""


@dataclass(frozen=True, slots=True)
class Difference:
    field: str
    ours: str
    theirs: str


@dataclass(frozen=True, slots=True)
class Mismatch:
    code: Code
    classification: Classification
    balance_transaction_id: str
    """The file row's id; empty for a record of ours that no row reached."""
    our_reference: str
    """``checkout:<id>``, ``order:<id>``, ``refund:<id>`` or ``payout:<id>``; empty for a row that matches nothing."""
    currency: str
    amount_minor: int
    """Theirs when the file has the row, else ours."""
    differences: tuple[Difference, ...] = ()
    line: int = 0


class Against(enum.StrEnum):
    """The account a booked row's gross is set against (the bank takes the net, the PSP fees the fee)."""

    PSP_RECEIVABLE = "psp_receivable"
    """Charges, refunds and refund failures: what the PSP owed us for them is settled."""
    DISPUTE_LOSSES = "dispute_losses"
    PSP_FEES = "psp_fees"
    PSP_ADJUSTMENTS = "psp_adjustments"


@dataclass(slots=True)  # not frozen, like OurOrder: one per booked row
class Booking:
    """A matched row to post: Dr bank net / Dr fees fee / Cr ``against`` gross (a negative gross mirrors it)."""

    balance_transaction_id: str
    our_reference: str
    currency: str
    gross_minor: int
    fee_minor: int
    against: Against = Against.PSP_RECEIVABLE


@dataclass(slots=True)  # one per row of a file: slots make it cheaper to build
class RowOutcome:
    mismatches: list[Mismatch] = field(default_factory=list)
    booking: Booking | None = None
    matched: bool = False
    reference: str = ""
    """Our record a row that books nothing belongs to (a pay-out's transfer), kept so later checks see it."""


@dataclass(frozen=True)
class Rules:
    fee_tolerance_minor: int
    """A fee off by at most this much is the PSP rounding or a rate change: posted, not a person's time."""
    expected_fee_bps: int | None = None
    """When set, a charge's fee is expected to be this many basis points of gross (rounded half up) plus
    ``expected_fee_fixed_minor``; None trusts the file's fee."""
    expected_fee_fixed_minor: int = 0
    grace: dt.timedelta = dt.timedelta(days=2)


def _mm(code: Code, row: SettlementRow | None, ref: str, currency: str, amount: int,
        diffs: Iterable[Difference] = ()) -> Mismatch:  # fmt: skip
    return Mismatch(
        code,
        CLASSIFICATION[code],
        row.balance_transaction_id if row else "",
        ref,
        currency,
        amount,
        tuple(diffs),
        row.line if row else 0,
    )


def _money_diffs(
    row: SettlementRow, amount: int, currency: str, sign: int
) -> tuple[Code | None, list[Difference]]:
    if row.currency != currency:
        return Code.CURRENCY_DIFFERS, [Difference("currency", currency, row.currency)]
    if sign * row.gross_minor != amount:
        return Code.AMOUNT_DIFFERS, [Difference("amount_minor", str(amount), str(sign * row.gross_minor))]
    return None, []


def checkout_reference(checkout_id: str) -> str:
    """What a charge row is booked against: the checkout, whose orders share its one PaymentIntent."""
    return f"checkout:{checkout_id}"


def classify_charge(row: SettlementRow, orders: Sequence[OurOrder] | None, rules: Rules) -> RowOutcome:
    """A ``charge`` row against the checkout its PaymentIntent belongs to (all its orders, one per seller).

    The row's gross is compared with the sum of the checkout's orders (the PaymentIntent charged them
    together); each order's own state and settlement are checked one by one, so a lost outcome or a missing
    wallet update names the order. The row is booked once, against the checkout.
    """
    out = RowOutcome()
    if not orders:
        out.mismatches.append(_mm(Code.UNMATCHED_ROW, row, "", row.currency, row.gross_minor))
        return out
    ref = checkout_reference(orders[0].checkout_id)
    out.matched = True
    out.reference = ref  # the row reached us even when it is not booked: its orders are not missing
    if len(orders) == 1:  # most checkouts have one seller: no set, sort and sum per row
        ours, total = orders[0].currency, orders[0].amount_minor
    else:
        currencies = sorted({o.currency for o in orders})
        ours = currencies[0] if len(currencies) == 1 else "/".join(currencies)
        total = sum(o.amount_minor for o in orders)
    if row.currency != ours or row.gross_minor != total:
        code, diffs = _money_diffs(row, total, ours, 1)
        if code is not None:
            # Not booked: what the PSP owes for this checkout is in question until a person decides.
            out.mismatches.append(_mm(code, row, ref, row.currency, row.gross_minor, diffs))
            return out
    for order in orders:
        if order.state in CAPTURED and order.wallet_updated and order.ledger_updated:
            continue  # the usual case: nothing to say about this order
        oref = f"order:{order.payment_order_id}"
        if order.state not in CAPTURED:
            out.mismatches.append(
                _mm(Code.PSP_CHARGED_ORDER_NOT_SUCCESS, row, oref, row.currency, order.amount_minor,
                    [Difference("state", order.state.value, "captured")])
            )  # fmt: skip
        elif not (order.wallet_updated and order.ledger_updated):
            out.mismatches.append(
                _mm(Code.SETTLEMENT_NOT_BOOKED, row, oref, row.currency, order.amount_minor,
                    [Difference("wallet_updated/ledger_updated",
                                f"{order.wallet_updated}/{order.ledger_updated}", "true/true")])
            )  # fmt: skip
    if rules.expected_fee_bps is not None:
        # The PSP's fee is on the charge as a whole (one fixed part per cart, not per seller).
        expected = (
            row.gross_minor * rules.expected_fee_bps + 5_000
        ) // 10_000 + rules.expected_fee_fixed_minor
        if expected != row.fee_minor:
            within = abs(expected - row.fee_minor) <= rules.fee_tolerance_minor
            out.mismatches.append(
                _mm(Code.FEE_DIFFERS if within else Code.FEE_DIFFERS_BEYOND_TOLERANCE, row, ref, row.currency,
                    row.fee_minor - expected, [Difference("fee_minor", str(expected), str(row.fee_minor))])
            )  # fmt: skip
    out.booking = Booking(row.balance_transaction_id, ref, row.currency, row.gross_minor, row.fee_minor)
    return out


def clean_charge_reference(
    currency: str, gross_minor: int, fee_minor: int, orders: Sequence[OurOrder] | None, rules: Rules
) -> str | None:
    """The usual charge row, told without building a row, outcome or booking: one order of ours, captured and
    settled, of the row's currency and gross, with the expected fee. Its checkout's reference (what the row is
    booked against, as :func:`classify_charge` would book it with no mismatch); None when the row needs
    :func:`classify_charge` (anything to say, or a cart of several orders)."""
    if orders is None or len(orders) != 1:
        return None
    order = orders[0]
    if (
        order.currency != currency
        or order.amount_minor != gross_minor
        or order.state not in CAPTURED
        or not (order.wallet_updated and order.ledger_updated)
    ):
        return None
    bps = rules.expected_fee_bps
    if (
        bps is not None
        and (gross_minor * bps + 5_000) // 10_000 + rules.expected_fee_fixed_minor != fee_minor
    ):
        return None
    return checkout_reference(order.checkout_id)


def classify_refund(row: SettlementRow, refund: OurRefund | None) -> RowOutcome:
    """A ``refund`` row (negative gross) against our refund by its ``re_`` id or ``refund_id`` metadata."""
    out = RowOutcome()
    if refund is None:
        out.mismatches.append(_mm(Code.REFUND_NOT_OURS, row, "", row.currency, row.gross_minor))
        return out
    ref = refund_reference(refund.refund_id)
    out.matched = True
    out.reference = ref  # the row reached us even when it is not booked: the refund is not missing
    code, diffs = _money_diffs(row, refund.amount_minor, refund.currency, -1)
    if code is not None:
        out.mismatches.append(_mm(code, row, ref, row.currency, row.gross_minor, diffs))
        return out
    out.booking = Booking(row.balance_transaction_id, ref, row.currency, row.gross_minor, row.fee_minor)
    return out


def classify_transfer(row: SettlementRow, payout_id: str, payout: OurPayout | None) -> RowOutcome:
    """A ``transfer`` row (negative gross: money leaving our balance) against the pay-out its metadata names.

    Nothing is booked: the pay-out posted its own movements (seller_payable → payouts_in_transit → bank).
    A transfer naming a pay-out we do not have, or one our pay-out never recorded, is money that left at the
    PSP without our books knowing: PAYOUT_NOT_IN_BOOKS, for a person.
    """
    out = RowOutcome()
    if not payout_id:
        out.mismatches.append(_mm(Code.UNMATCHED_ROW, row, "", row.currency, row.gross_minor))
        return out
    if payout is None:
        out.mismatches.append(
            _mm(Code.PAYOUT_NOT_IN_BOOKS, row, f"payout:{payout_id}", row.currency, row.gross_minor,
                [Difference("payout", "absent", payout_id)])
        )  # fmt: skip
        return out
    ref = f"payout:{payout.payout_id}"
    out.matched = True
    out.reference = ref
    code, diffs = _money_diffs(row, payout.amount_minor, payout.currency, -1)
    if code is not None:
        out.mismatches.append(_mm(code, row, ref, row.currency, row.gross_minor, diffs))
    elif not payout.psp_transfer_id:
        out.mismatches.append(
            _mm(Code.PAYOUT_NOT_IN_BOOKS, row, ref, row.currency, row.gross_minor,
                [Difference("state", payout.state, "TRANSFERRED")])
        )  # fmt: skip
    elif payout.psp_transfer_id != row.source_id:
        out.mismatches.append(
            _mm(Code.PAYOUT_NOT_IN_BOOKS, row, ref, row.currency, row.gross_minor,
                [Difference("psp_transfer_id", payout.psp_transfer_id, row.source_id)])
        )  # fmt: skip
    return out


def missing_from_psp(
    orders: Iterable[OurOrder], seen_references: set[str], now: dt.datetime, rules: Rules
) -> tuple[list[Mismatch], int]:
    """Our captured orders whose checkout's charge no file has reached: pending inside the grace period,
    MISSING_FROM_PSP after it (one mismatch per order: each is a seller's money).

    Returns the mismatches and how many are still pending.
    """
    mismatches: list[Mismatch] = []
    pending = 0
    for order in orders:
        if order.state not in CAPTURED or checkout_reference(order.checkout_id) in seen_references:
            continue
        if now - order.created_at < rules.grace:
            pending += 1
            continue
        mismatches.append(
            _mm(Code.MISSING_FROM_PSP, None, f"order:{order.payment_order_id}", order.currency,
                order.amount_minor, [Difference("settlement_row", "captured", "absent")])
        )  # fmt: skip
    return mismatches, pending


def classify_dispute(
    row: SettlementRow, orders: Sequence[OurOrder] | None, disputes: Sequence[OurDispute] | None = None
) -> RowOutcome:
    """A ``dispute`` row (the PSP takes the charge back, negative gross, plus its dispute fee) or a
    ``dispute_reversal`` (a won dispute gives it back) against the checkout of the disputed charge.

    The payment service records disputes (GetCheckout's ``disputes``) but books no money for them, so the
    movement is booked here, against
    ``expense:dispute_losses``: Dr losses / Dr fees / Cr bank (mirrored by a reversal). A dispute on a charge we
    have no record of is DISPUTE_NOT_RECORDED and not booked; one for more than the checkout is AMOUNT_DIFFERS.

    With the checkout's ``disputes`` (None: not compared), the row's dispute (its ``source_id``) must be one the
    payment service recorded: absent is DISPUTE_RECORD_MISSING (booked: the money moved at the PSP all the same);
    another amount or currency is AMOUNT_DIFFERS / CURRENCY_DIFFERS on ``dispute.*`` (not booked, like any row
    whose money differs); a status the row contradicts is DISPUTE_STATUS_DIFFERS (booked).
    """
    out = RowOutcome()
    if not orders:
        out.mismatches.append(_mm(Code.DISPUTE_NOT_RECORDED, row, "", row.currency, row.gross_minor))
        return out
    ref = checkout_reference(orders[0].checkout_id)
    out.matched = True
    total = sum(o.amount_minor for o in orders)
    currencies = sorted({o.currency for o in orders})
    ours = currencies[0] if len(currencies) == 1 else "/".join(currencies)
    if row.currency != ours:
        out.mismatches.append(
            _mm(Code.CURRENCY_DIFFERS, row, ref, row.currency, row.gross_minor,
                [Difference("currency", ours, row.currency)])
        )  # fmt: skip
        return out
    if abs(row.gross_minor) > total:  # a dispute may cover part of a charge, never more than it
        out.mismatches.append(
            _mm(Code.AMOUNT_DIFFERS, row, ref, row.currency, row.gross_minor,
                [Difference("amount_minor", f"at most {total}", str(abs(row.gross_minor)))])
        )  # fmt: skip
        return out
    if disputes is not None and not _dispute_agrees(row, ref, disputes, out):
        return out
    out.booking = Booking(
        row.balance_transaction_id, ref, row.currency, row.gross_minor, row.fee_minor, Against.DISPUTE_LOSSES
    )
    return out


def _dispute_agrees(row: SettlementRow, ref: str, disputes: Sequence[OurDispute], out: RowOutcome) -> bool:
    """Compare a dispute row with the payment service's record of its dispute, adding each difference to
    ``out``; False when the row must not be booked (its money differs)."""
    reversal = row.reporting_category == "dispute_reversal"
    ours = next((d for d in disputes if d.dispute_id == row.source_id), None)
    if ours is None:
        out.mismatches.append(
            _mm(Code.DISPUTE_RECORD_MISSING, row, ref, row.currency, row.gross_minor,
                [Difference("dispute", "absent", f"{row.reporting_category} {row.source_id}")])
        )  # fmt: skip
        return True
    if row.currency != ours.currency:
        out.mismatches.append(
            _mm(Code.CURRENCY_DIFFERS, row, ref, row.currency, row.gross_minor,
                [Difference("dispute.currency", ours.currency, row.currency)])
        )  # fmt: skip
        return False
    if abs(row.gross_minor) != ours.amount_minor:
        out.mismatches.append(
            _mm(Code.AMOUNT_DIFFERS, row, ref, row.currency, row.gross_minor,
                [Difference("dispute.amount_minor", str(ours.amount_minor), str(abs(row.gross_minor)))])
        )  # fmt: skip
        return False
    agrees = ours.status == "won" if reversal else ours.status in WITHDRAWN_STATUSES
    if not agrees:
        theirs = "won (funds reinstated)" if reversal else "funds withdrawn"
        out.mismatches.append(
            _mm(Code.DISPUTE_STATUS_DIFFERS, row, ref, row.currency, row.gross_minor,
                [Difference("dispute.status", ours.status, theirs)])
        )  # fmt: skip
    return True


def classify_refund_failure(row: SettlementRow, refund: OurRefund | None) -> RowOutcome:
    """A ``refund_failure`` row (positive gross: the refunded money came back) against our refund.

    Booked as the mirror of the refund's settlement. When we still hold the refund as succeeded the books
    disagree with the PSP: REFUND_FAILED_AT_PSP, for a person (the buyer was not refunded).
    """
    out = RowOutcome()
    if refund is None:
        out.mismatches.append(_mm(Code.REFUND_NOT_OURS, row, "", row.currency, row.gross_minor))
        return out
    ref = f"refund:{refund.refund_id}"
    out.matched = True
    code, diffs = _money_diffs(row, refund.amount_minor, refund.currency, 1)
    if code is not None:
        out.mismatches.append(_mm(code, row, ref, row.currency, row.gross_minor, diffs))
        return out
    if refund.succeeded:
        out.mismatches.append(
            _mm(Code.REFUND_FAILED_AT_PSP, row, ref, row.currency, row.gross_minor,
                [Difference("refund_state", "SUCCEEDED", "failed")])
        )  # fmt: skip
    out.booking = Booking(row.balance_transaction_id, ref, row.currency, row.gross_minor, row.fee_minor)
    return out


def classify_transfer_reversal(row: SettlementRow, payout_id: str, payout: OurPayout | None) -> RowOutcome:
    """A ``transfer_reversal`` (positive gross: a seller's transfer came back) against our pay-out.

    Nothing is booked: a failed or canceled pay-out reverses its own posting. A reversal for a pay-out we do
    not have, or one we do not hold as failed or canceled, is PAYOUT_NOT_IN_BOOKS.
    """
    out = RowOutcome()
    if not payout_id:
        out.mismatches.append(_mm(Code.UNMATCHED_ROW, row, "", row.currency, row.gross_minor))
        return out
    if payout is None:
        out.mismatches.append(
            _mm(Code.PAYOUT_NOT_IN_BOOKS, row, f"payout:{payout_id}", row.currency, row.gross_minor,
                [Difference("payout", "absent", payout_id)])
        )  # fmt: skip
        return out
    ref = f"payout:{payout.payout_id}"
    out.matched = True
    out.reference = ref
    if row.currency != payout.currency:
        out.mismatches.append(
            _mm(Code.CURRENCY_DIFFERS, row, ref, row.currency, row.gross_minor,
                [Difference("currency", payout.currency, row.currency)])
        )  # fmt: skip
    elif row.gross_minor > payout.amount_minor:
        out.mismatches.append(
            _mm(Code.AMOUNT_DIFFERS, row, ref, row.currency, row.gross_minor,
                [Difference("amount_minor", f"at most {payout.amount_minor}", str(row.gross_minor))])
        )  # fmt: skip
    elif payout.state not in FAILED_PAYOUT_STATES:
        out.mismatches.append(
            _mm(Code.PAYOUT_NOT_IN_BOOKS, row, ref, row.currency, row.gross_minor,
                [Difference("state", payout.state, "reversed")])
        )  # fmt: skip
    return out


def classify_platform_payout(row: SettlementRow) -> RowOutcome:
    """The PSP paying our balance out to our bank (``payout``, negative gross) or that payout coming back
    (``payout_reversal``).

    Nothing is booked: DESIGN.md's settlement already moves settled money into ``asset:bank:operating``, so
    the PSP's sweep to the bank is a move inside that account. A payout that came back is PLATFORM_PAYOUT_FAILED
    for a person (our bank account needs fixing), still not booked.
    """
    out = RowOutcome(matched=True)
    if row.reporting_category == "payout_reversal":
        out.mismatches.append(
            _mm(Code.PLATFORM_PAYOUT_FAILED, row, f"psp_payout:{row.source_id}", row.currency, row.gross_minor,
                [Difference("payout_state", "paid", "failed")])
        )  # fmt: skip
    return out


def classify_fee(row: SettlementRow) -> RowOutcome:
    """A fee the PSP charged outside a charge: booked to ``expense:psp_fees`` (Dr fees / Cr bank)."""
    out = RowOutcome(matched=True)
    out.booking = Booking(
        row.balance_transaction_id, f"psp_fee:{row.source_id}", row.currency, row.gross_minor, row.fee_minor,
        Against.PSP_FEES,
    )  # fmt: skip
    return out


def classify_adjustment(row: SettlementRow) -> RowOutcome:
    """Another adjustment of our balance by the PSP: booked as the PSP says (against
    ``expense:psp_adjustments``, so the bank matches the PSP) and PSP_ADJUSTMENT for a person to confirm."""
    out = RowOutcome(matched=True)
    ref = f"psp_adjustment:{row.source_id}"
    out.booking = Booking(
        row.balance_transaction_id, ref, row.currency, row.gross_minor, row.fee_minor, Against.PSP_ADJUSTMENTS
    )
    out.mismatches.append(
        _mm(Code.PSP_ADJUSTMENT, row, ref, row.currency, row.gross_minor,
            [Difference("adjustment", "none", row.description or row.source_id)])
    )  # fmt: skip
    return out


def payout_reference(payout_id: str) -> str:
    return f"payout:{payout_id}"


def refund_reference(refund_id: str) -> str:
    return f"refund:{refund_id}"


def missing_refunds_from_psp(
    refunds: Iterable[OurRefund], seen_references: set[str], now: dt.datetime, rules: Rules
) -> tuple[list[Mismatch], int]:
    """Our succeeded refunds whose row no file has reached: pending inside the grace period (from the refund's
    creation), MISSING_FROM_PSP after it (amount negative, as the refund's row would be)."""
    mismatches: list[Mismatch] = []
    pending = 0
    for refund in refunds:
        ref = refund_reference(refund.refund_id)
        if not refund.succeeded or ref in seen_references:
            continue
        if now - refund.created_at < rules.grace:
            pending += 1
            continue
        mismatches.append(
            _mm(Code.MISSING_FROM_PSP, None, ref, refund.currency, -refund.amount_minor,
                [Difference("settlement_row", "SUCCEEDED", "absent")])
        )  # fmt: skip
    return mismatches, pending


def missing_payouts_from_psp(
    payouts: Iterable[OurPayout], seen_references: set[str], now: dt.datetime, rules: Rules
) -> tuple[list[Mismatch], int]:
    """Our pay-outs transferred at the PSP (a ``psp_transfer_id``) whose transfer no file has reached: pending
    inside the grace period (from the pay-out's creation), MISSING_FROM_PSP after it."""
    mismatches: list[Mismatch] = []
    pending = 0
    for payout in payouts:
        ref = payout_reference(payout.payout_id)
        if not payout.psp_transfer_id or ref in seen_references:
            continue
        if payout.created_at is not None and now - payout.created_at < rules.grace:
            pending += 1
            continue
        mismatches.append(
            _mm(Code.MISSING_FROM_PSP, None, ref, payout.currency, -payout.amount_minor,
                [Difference("transfer_row", payout.psp_transfer_id, "absent")])
        )  # fmt: skip
    return mismatches, pending
