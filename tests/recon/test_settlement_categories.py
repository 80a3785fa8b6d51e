"""Every other reporting_category: disputes, refund failures, transfer reversals, the PSP's payouts, fees and
adjustments, each matched (or flagged) and booked as DESIGN.md's settlement shape says."""

from __future__ import annotations

import datetime as dt
import io
import uuid
from collections.abc import Sequence
from typing import cast

import sqlalchemy as sa

from recon_svc.settlement import tables as t
from recon_svc.settlement.categories import match_other
from recon_svc.settlement.classify import (
    Against,
    Booking,
    Classification,
    Code,
    OrderState,
    OurDispute,
    OurOrder,
    OurPayout,
    OurRefund,
    Rules,
    classify_adjustment,
    classify_dispute,
    classify_fee,
    classify_platform_payout,
    classify_refund_failure,
    classify_transfer_reversal,
    missing_payouts_from_psp,
)
from recon_svc.settlement.parse import SettlementRow
from recon_svc.settlement.records import ChunkBooking, PaymentRecords, settlement_entries
from recon_svc.settlement.run import reconcile_file
from svckit.gen.ledger.v1 import ledger_service_pb2 as lpb

NOW = dt.datetime(2026, 11, 21, 3, 0, tzinfo=dt.UTC)
RULES = Rules(fee_tolerance_minor=2)


def _row(category: str, gross: int, fee: int = 0, source: str = "src_a") -> SettlementRow:
    return SettlementRow(
        line=4,
        balance_transaction_id="txn_c",
        created_utc=NOW,
        currency="USD",
        gross_minor=gross,
        fee_minor=fee,
        net_minor=gross - fee,
        reporting_category=category,
        source_id=source,
    )


CART = [
    OurOrder("po-a", "pi_a", 2_000, "USD", OrderState.SUCCESS, NOW, True, True, "co-d"),
    OurOrder("po-b", "pi_a", 1_000, "USD", OrderState.SUCCESS, NOW, True, True, "co-d"),
]


def _entries(booking: Booking | None) -> set[tuple[str, str, int]]:
    assert booking is not None
    return {
        (e.account, lpb.Direction.Name(e.direction).removeprefix("DIRECTION_"), e.amount_minor)
        for e in settlement_entries(booking)
    }


def test_a_dispute_on_our_cart_is_booked_as_a_loss_with_its_fee():
    out = classify_dispute(_row("dispute", -3_000, 1_500, "dp_a"), CART)
    assert (out.matched, out.mismatches) == (True, [])
    assert out.booking is not None and out.booking.our_reference == "checkout:co-d"
    assert _entries(out.booking) == {
        ("expense:dispute_losses/USD", "DEBIT", 3_000),
        ("expense:psp_fees/USD", "DEBIT", 1_500),
        ("asset:bank:operating/USD", "CREDIT", 4_500),
    }
    won = classify_dispute(_row("dispute_reversal", 3_000, -1_500, "dp_a"), CART)
    assert _entries(won.booking) == {
        ("expense:dispute_losses/USD", "CREDIT", 3_000),
        ("expense:psp_fees/USD", "CREDIT", 1_500),
        ("asset:bank:operating/USD", "DEBIT", 4_500),
    }


def test_a_dispute_we_have_no_record_of_is_manual_and_one_above_the_charge_is_not_booked():
    [m] = (out := classify_dispute(_row("dispute", -3_000, 1_500), None)).mismatches
    assert (m.code, m.classification, out.booking) == (Code.DISPUTE_NOT_RECORDED, Classification.MANUAL, None)
    [big] = (over := classify_dispute(_row("dispute", -3_001, 1_500), CART)).mismatches
    assert (big.code, big.differences[0].ours, over.booking) == (Code.AMOUNT_DIFFERS, "at most 3000", None)


def test_a_dispute_row_is_compared_with_the_payment_services_record_of_its_dispute():
    lost = [OurDispute("dp_a", 3_000, "USD", "lost")]
    agreed = classify_dispute(_row("dispute", -3_000, 1_500, "dp_a"), CART, lost)
    assert (agreed.mismatches, agreed.booking is not None) == ([], True)
    # A dispute the payment service never heard of: still booked (the PSP took the money), for a person.
    [missing] = (unheard := classify_dispute(_row("dispute", -3_000, 1_500, "dp_b"), CART, lost)).mismatches
    assert (missing.code, missing.classification, unheard.booking is not None) == (
        Code.DISPUTE_RECORD_MISSING,
        Classification.MANUAL,
        True,
    )
    # Another amount than our record: not booked.
    [other] = (off := classify_dispute(_row("dispute", -2_500, 1_500, "dp_a"), CART, lost)).mismatches
    assert (other.code, other.differences[0].field, off.booking) == (
        Code.AMOUNT_DIFFERS,
        "dispute.amount_minor",
        None,
    )
    # A reversal (won) of a dispute we hold lost, and funds withdrawn for what we hold an inquiry: booked, flagged.
    [status] = classify_dispute(_row("dispute_reversal", 3_000, 0, "dp_a"), CART, lost).mismatches
    assert (status.code, status.differences[0].ours) == (Code.DISPUTE_STATUS_DIFFERS, "lost")
    inquiry = [OurDispute("dp_a", 3_000, "USD", "warning_needs_response")]
    [withdrawn] = classify_dispute(_row("dispute", -3_000, 1_500, "dp_a"), CART, inquiry).mismatches
    assert withdrawn.code == Code.DISPUTE_STATUS_DIFFERS
    won = [OurDispute("dp_a", 3_000, "USD", "won")]
    assert classify_dispute(_row("dispute_reversal", 3_000, 0, "dp_a"), CART, won).mismatches == []


class _CartWithoutDisputes:
    """Our cart, charged with PaymentIntent ``pi_a``, on which the payment service recorded no dispute."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    async def checkout_for(self, row):
        return CART

    async def disputes_for(self, payment_intent_id):
        self.asked.append(payment_intent_id)
        return []


async def test_a_dispute_row_of_a_file_without_payment_intents_is_compared_through_our_orders_payment_intent():
    records = _CartWithoutDisputes()
    out = await match_other(_row("dispute", -3_000, 1_500, "dp_a"), cast(PaymentRecords, records))
    assert records.asked == ["pi_a"]
    assert [m.code for m in out.mismatches] == [Code.DISPUTE_RECORD_MISSING]


def test_a_refund_failure_mirrors_the_refund_and_is_flagged_while_we_hold_it_succeeded():
    failed = OurRefund("rf-1", "po-a", "re_a", 500, "USD", False, NOW)
    out = classify_refund_failure(_row("refund_failure", 500, 0, "re_a"), failed)
    assert (out.matched, out.mismatches) == (True, [])
    assert _entries(out.booking) == {
        ("asset:bank:operating/USD", "DEBIT", 500),
        ("asset:psp_receivable:stripe/USD", "CREDIT", 500),
    }
    held = OurRefund("rf-1", "po-a", "re_a", 500, "USD", True, NOW)
    [m] = (flagged := classify_refund_failure(_row("refund_failure", 500, 0, "re_a"), held)).mismatches
    assert (m.code, m.classification, m.differences[0].ours) == (
        Code.REFUND_FAILED_AT_PSP,
        Classification.MANUAL,
        "SUCCEEDED",
    )
    assert flagged.booking is not None  # the money is back at the PSP whatever we hold
    [n] = classify_refund_failure(_row("refund_failure", 500), None).mismatches
    assert n.code is Code.REFUND_NOT_OURS


def test_a_transfer_reversal_matches_our_failed_payout_and_is_flagged_for_one_we_hold_as_paid():
    failed = OurPayout("pyo_1", "FAILED", 4_000, "USD", "tr_a")
    out = classify_transfer_reversal(_row("transfer_reversal", 4_000, 0, "trr_a"), "pyo_1", failed)
    assert (out.matched, out.mismatches, out.booking) == (True, [], None)
    paid = OurPayout("pyo_1", "PAID", 4_000, "USD", "tr_a")
    [m] = classify_transfer_reversal(_row("transfer_reversal", 4_000), "pyo_1", paid).mismatches
    assert (m.code, m.differences[0].ours) == (Code.PAYOUT_NOT_IN_BOOKS, "PAID")
    [gone] = classify_transfer_reversal(_row("transfer_reversal", 4_000), "pyo_x", None).mismatches
    assert (gone.code, gone.our_reference) == (Code.PAYOUT_NOT_IN_BOOKS, "payout:pyo_x")
    [u] = classify_transfer_reversal(_row("transfer_reversal", 4_000), "", None).mismatches
    assert u.code is Code.UNMATCHED_ROW


def test_the_psps_payout_to_our_bank_books_nothing_and_one_that_came_back_is_manual():
    out = classify_platform_payout(_row("payout", -9_000, 0, "po_a"))
    assert (out.matched, out.mismatches, out.booking) == (True, [], None)
    [m] = classify_platform_payout(_row("payout_reversal", 9_000, 0, "po_a")).mismatches
    assert (m.code, m.classification, m.our_reference) == (
        Code.PLATFORM_PAYOUT_FAILED,
        Classification.MANUAL,
        "psp_payout:po_a",
    )


def test_a_standalone_fee_is_booked_to_fees_and_an_adjustment_booked_for_a_person():
    fee = classify_fee(_row("fee", -250, 0, "fee_a"))
    assert (fee.matched, fee.mismatches) == (True, [])
    assert _entries(fee.booking) == {
        ("asset:bank:operating/USD", "CREDIT", 250),
        ("expense:psp_fees/USD", "DEBIT", 250),
    }
    adj = classify_adjustment(_row("other_adjustment", 120, 0, "adj_a"))
    [m] = adj.mismatches
    assert (m.code, m.classification) == (Code.PSP_ADJUSTMENT, Classification.MANUAL)
    assert adj.booking is not None and adj.booking.against is Against.PSP_ADJUSTMENTS
    assert _entries(adj.booking) == {
        ("asset:bank:operating/USD", "DEBIT", 120),
        ("expense:psp_adjustments/USD", "CREDIT", 120),
    }


def _our_payout(payout_id: str, transfer: str, created: dt.datetime) -> OurPayout:
    return OurPayout(payout_id, "PAID", 4_000, "USD", transfer, created)


def test_our_payout_missing_from_the_files_is_pending_then_manual():
    old = _our_payout("pyo_old", "tr_old", NOW - dt.timedelta(days=3))
    fresh = _our_payout("pyo_new", "tr_new", NOW - dt.timedelta(hours=2))
    never_sent = _our_payout("pyo_none", "", NOW - dt.timedelta(days=3))
    seen = _our_payout("pyo_seen", "tr_seen", NOW - dt.timedelta(days=3))
    found, pending = missing_payouts_from_psp([old, fresh, never_sent, seen], {"payout:pyo_seen"}, NOW, RULES)
    assert pending == 1
    [m] = found
    assert (m.code, m.classification, m.our_reference, m.amount_minor) == (
        Code.MISSING_FROM_PSP,
        Classification.MANUAL,
        "payout:pyo_old",
        -4_000,
    )
    assert (m.differences[0].ours, m.differences[0].theirs) == ("tr_old", "absent")


class _Records:
    """Our side with one pay-out transferred three days ago and nothing else."""

    def __init__(self, payout: OurPayout) -> None:
        self.payout = payout

    async def checkout_for(self, row):
        return None

    async def refund_for(self, row):
        return None

    async def disputes_for(self, payment_intent_id):
        return None

    async def payout_for(self, payout_id):
        return self.payout if payout_id == self.payout.payout_id else None

    async def captured_orders(self, start, end):
        return
        yield

    async def payouts_created(self, start, end):
        yield self.payout

    async def refunds_succeeded(self, start, end):
        return
        yield


class _NoBooking:
    async def post(self, bookings: Sequence[ChunkBooking]) -> list[int]:
        raise AssertionError(f"nothing of this file is booked, yet {bookings}")


async def test_a_run_flags_our_payout_whose_transfer_no_file_has_and_not_one_a_file_counted(services):
    tag = uuid.uuid4().hex[:10]
    now = dt.datetime.now(dt.UTC)
    window = (now - dt.timedelta(days=4), now)
    header = "balance_transaction_id,created_utc,currency,gross,fee,net,reporting_category,source_id"
    counted = _our_payout(f"pyo_{tag}c", f"tr_{tag}c", now - dt.timedelta(days=3))
    transfer = f"txn_{tag},2026-11-20 10:00:00,usd,-40.00,0.00,-40.00,transfer,tr_{tag}c"
    data = f"{header},transfer_metadata[payout_id]\n{transfer},{counted.payout_id}\n".encode()
    engine = services["recon"].engine
    rules = Rules(fee_tolerance_minor=2)
    first = await reconcile_file(
        engine, io.BytesIO(data), _Records(counted), _NoBooking(), rules, expected_window=window
    )
    assert (first.state, first.matched, first.mismatches_by_code) == ("SUCCEEDED", 1, {})

    lost = _our_payout(f"pyo_{tag}l", f"tr_{tag}l", now - dt.timedelta(days=3))
    empty = f"{header},payment_metadata[probe_{tag}]\n".encode()
    later = await reconcile_file(
        engine, io.BytesIO(empty), _Records(lost), _NoBooking(), rules, expected_window=window
    )
    assert (later.mismatches_by_code, later.open_by_classification) == (
        {"MISSING_FROM_PSP": 1},
        {"manual": 1},
    )
    async with engine.connect() as conn:
        [ref] = (
            await conn.execute(
                sa.select(t.mismatches.c.our_reference).where(t.mismatches.c.run_id == later.run_id)
            )
        ).scalars()
    assert ref == f"payout:{lost.payout_id}"
