"""Classification rules: each difference its own mismatch, with its code, class and ours-vs-theirs fields."""

from __future__ import annotations

import datetime as dt

from recon_svc.settlement.classify import (
    Classification,
    Code,
    OrderState,
    OurOrder,
    OurPayout,
    OurRefund,
    Rules,
    classify_charge,
    classify_refund,
    classify_transfer,
    clean_charge_reference,
    missing_from_psp,
)
from recon_svc.settlement.parse import SettlementRow

NOW = dt.datetime(2026, 11, 21, 3, 0, tzinfo=dt.UTC)
RULES = Rules(fee_tolerance_minor=2, expected_fee_bps=290)


def _row(
    gross: int = 10_000, fee: int = 290, currency: str = "USD", category: str = "charge"
) -> SettlementRow:
    return SettlementRow(
        line=7,
        balance_transaction_id="txn_a",
        created_utc=NOW,
        currency=currency,
        gross_minor=gross,
        fee_minor=fee,
        net_minor=gross - fee,
        reporting_category=category,
        source_id="ch_a",
    )


def _order(state: OrderState = OrderState.SUCCESS, amount: int = 10_000, wallet: bool = True,
           created: dt.datetime = NOW) -> OurOrder:  # fmt: skip
    return OurOrder("po-1", "pi_a", amount, "USD", state, created, wallet, True, "co-1")


def test_a_matching_charge_is_booked_with_no_mismatch():
    out = classify_charge(_row(), [_order()], RULES)
    assert out.matched and out.mismatches == []
    assert out.booking is not None
    assert (out.booking.gross_minor, out.booking.fee_minor, out.booking.our_reference) == (
        10_000,
        290,
        "checkout:co-1",
    )


def test_a_charge_for_an_order_not_captured_is_auto_fixable():
    out = classify_charge(_row(), [_order(OrderState.EXECUTING)], RULES)
    [m] = out.mismatches
    assert (m.code, m.classification) == (Code.PSP_CHARGED_ORDER_NOT_SUCCESS, Classification.AUTO_FIXABLE)
    assert (m.differences[0].field, m.differences[0].ours) == ("state", "EXECUTING")


def test_a_success_without_its_wallet_update_is_auto_fixable():
    [m] = classify_charge(_row(), [_order(wallet=False)], RULES).mismatches
    assert (m.code, m.classification) == (Code.SETTLEMENT_NOT_BOOKED, Classification.AUTO_FIXABLE)


def test_another_amount_is_manual_and_not_booked_and_shows_both_sides():
    out = classify_charge(_row(gross=10_050, fee=291), [_order()], RULES)
    [m] = out.mismatches
    assert (m.code, m.classification, m.line) == (Code.AMOUNT_DIFFERS, Classification.MANUAL, 7)
    assert (m.differences[0].ours, m.differences[0].theirs) == ("10000", "10050")
    assert out.booking is None


def test_another_currency_is_its_own_code():
    [m] = classify_charge(_row(currency="EUR"), [_order()], RULES).mismatches
    assert (m.code, m.differences[0].ours, m.differences[0].theirs) == (Code.CURRENCY_DIFFERS, "USD", "EUR")


def test_a_fee_within_tolerance_is_auto_fixable_beyond_it_manual():
    [small] = classify_charge(_row(fee=292), [_order()], RULES).mismatches
    assert (small.code, small.classification, small.amount_minor) == (
        Code.FEE_DIFFERS,
        Classification.AUTO_FIXABLE,
        2,
    )
    [big] = classify_charge(_row(fee=400), [_order()], RULES).mismatches
    assert (big.code, big.classification) == (Code.FEE_DIFFERS_BEYOND_TOLERANCE, Classification.MANUAL)


def test_a_charge_we_never_made_is_unclassified():
    [m] = classify_charge(_row(), None, RULES).mismatches
    assert (m.code, m.classification, m.our_reference) == (
        Code.UNMATCHED_ROW,
        Classification.UNCLASSIFIED,
        "",
    )


def test_a_refund_at_the_psp_we_never_recorded_is_manual():
    [m] = classify_refund(_row(gross=-500, fee=0, category="refund"), None).mismatches
    assert (m.code, m.classification) == (Code.REFUND_NOT_OURS, Classification.MANUAL)


def test_our_refund_matches_its_negative_row():
    refund = OurRefund("rf-1", "po-1", "re_a", 500, "USD", True, NOW)
    out = classify_refund(_row(gross=-500, fee=0, category="refund"), refund)
    assert out.mismatches == [] and out.booking is not None and out.booking.gross_minor == -500


def test_offsetting_differences_are_reported_one_by_one():
    up = classify_charge(_row(gross=10_001, fee=290), [_order()], RULES).mismatches
    down = classify_charge(_row(gross=9_999, fee=290), [_order()], RULES).mismatches
    assert [m.code for m in up + down] == [Code.AMOUNT_DIFFERS, Code.AMOUNT_DIFFERS]


def test_our_success_missing_from_the_file_is_pending_then_manual():
    fresh = _order(created=NOW - dt.timedelta(hours=1))
    old = OurOrder(
        "po-2", "pi_b", 700, "USD", OrderState.SUCCESS, NOW - dt.timedelta(days=3), True, True, "co-2"
    )
    failed = OurOrder(
        "po-3", "", 700, "USD", OrderState.FAILED, NOW - dt.timedelta(days=3), False, False, "co-3"
    )
    mismatches, pending = missing_from_psp([fresh, old, failed], set(), NOW, RULES)
    assert pending == 1
    [m] = mismatches
    assert (m.code, m.classification, m.our_reference) == (
        Code.MISSING_FROM_PSP,
        Classification.MANUAL,
        "order:po-2",
    )
    assert missing_from_psp([old], {"checkout:co-2"}, NOW, RULES) == ([], 0)


def _seller(
    order_id: str, amount: int, state: OrderState = OrderState.SUCCESS, wallet: bool = True
) -> OurOrder:
    return OurOrder(order_id, "pi_cart", amount, "USD", state, NOW, wallet, True, "co-cart")


def test_a_three_seller_cart_is_one_charge_booked_once_against_its_checkout():
    cart = [_seller("po-a", 5_000), _seller("po-b", 3_000), _seller("po-c", 2_000)]
    out = classify_charge(_row(), cart, RULES)
    assert out.matched and out.mismatches == []
    assert out.booking is not None
    assert (out.booking.our_reference, out.booking.gross_minor) == ("checkout:co-cart", 10_000)


def test_a_cart_charged_for_another_total_shows_the_sum_of_its_orders():
    cart = [_seller("po-a", 5_000), _seller("po-b", 3_000), _seller("po-c", 2_100)]
    out = classify_charge(_row(), cart, RULES)
    [m] = out.mismatches
    assert (m.code, m.our_reference, m.differences[0].ours, m.differences[0].theirs) == (
        Code.AMOUNT_DIFFERS,
        "checkout:co-cart",
        "10100",
        "10000",
    )
    assert out.booking is None


def test_each_order_of_a_cart_is_checked_on_its_own():
    cart = [
        _seller("po-a", 5_000, OrderState.UNKNOWN),
        _seller("po-b", 3_000),
        _seller("po-c", 2_000, wallet=False),
    ]
    out = classify_charge(_row(), cart, RULES)
    assert [(m.code, m.our_reference, m.amount_minor) for m in out.mismatches] == [
        (Code.PSP_CHARGED_ORDER_NOT_SUCCESS, "order:po-a", 5_000),
        (Code.SETTLEMENT_NOT_BOOKED, "order:po-c", 2_000),
    ]
    assert out.booking is not None and out.booking.gross_minor == 10_000


def _transfer(gross: int = -4_000, source: str = "tr_a") -> SettlementRow:
    row = _row(gross=gross, fee=0, category="transfer")
    return SettlementRow(**{**{f: getattr(row, f) for f in row.__dataclass_fields__}, "source_id": source})


def _payout(state: str = "PAID", amount: int = 4_000, transfer: str = "tr_a") -> OurPayout:
    return OurPayout("pyo_1", state, amount, "USD", transfer)


def test_our_payouts_transfer_matches_and_books_nothing():
    out = classify_transfer(_transfer(), "pyo_1", _payout())
    assert (out.matched, out.mismatches, out.booking) == (True, [], None)


def test_a_transfer_for_a_payout_we_do_not_have_is_manual():
    [m] = classify_transfer(_transfer(), "pyo_gone", None).mismatches
    assert (m.code, m.classification, m.our_reference, m.amount_minor) == (
        Code.PAYOUT_NOT_IN_BOOKS,
        Classification.MANUAL,
        "payout:pyo_gone",
        -4_000,
    )


def test_a_transfer_our_payout_never_recorded_is_not_in_our_books():
    [m] = classify_transfer(_transfer(), "pyo_1", _payout("RESERVED", transfer="")).mismatches
    assert (m.code, m.differences[0].ours, m.differences[0].theirs) == (
        Code.PAYOUT_NOT_IN_BOOKS,
        "RESERVED",
        "TRANSFERRED",
    )
    [other] = classify_transfer(_transfer(source="tr_b"), "pyo_1", _payout()).mismatches
    assert (other.code, other.differences[0].field) == (Code.PAYOUT_NOT_IN_BOOKS, "psp_transfer_id")


def test_a_transfer_of_another_amount_is_manual_and_a_transfer_without_our_metadata_unclassified():
    [m] = classify_transfer(_transfer(gross=-4_100), "pyo_1", _payout()).mismatches
    assert (m.code, m.differences[0].ours, m.differences[0].theirs) == (Code.AMOUNT_DIFFERS, "4000", "4100")
    [u] = classify_transfer(_transfer(), "", None).mismatches
    assert (u.code, u.classification) == (Code.UNMATCHED_ROW, Classification.UNCLASSIFIED)


def test_the_clean_charge_shortcut_says_clean_exactly_when_the_full_rules_find_nothing():
    second = OurOrder("po-2", "pi_a", 5_000, "USD", OrderState.SUCCESS, NOW, True, True, "co-1")
    cases = [
        (_row(), [_order()]),
        (_row(), [_order(OrderState.PARTIALLY_REFUNDED)]),
        (_row(), [_order(OrderState.EXECUTING)]),
        (_row(), [_order(wallet=False)]),
        (_row(), [_order(amount=9_999)]),
        (_row(currency="EUR"), [_order()]),
        (_row(fee=291), [_order()]),  # within the tolerance: FEE_DIFFERS
        (_row(fee=400), [_order()]),
        (_row(gross=15_000, fee=435), [_order(), second]),  # a cart of two: always the full rules
        (_row(), None),
    ]
    for rules in (RULES, Rules(fee_tolerance_minor=0)):
        for row, orders in cases:
            full = classify_charge(row, orders, rules)
            clean = clean_charge_reference(row.currency, row.gross_minor, row.fee_minor, orders, rules)
            if clean is None:
                assert full.mismatches or full.booking is None or (orders is not None and len(orders) > 1), (
                    row,
                    orders,
                )
            else:
                assert full.matched and not full.mismatches and full.booking is not None, (row, orders)
                assert (full.booking.our_reference, full.booking.against) == (clean, "psp_receivable")
    # The usual row is the shortcut's: the benchmark's million rows take it.
    assert clean_charge_reference("USD", 10_000, 290, [_order()], RULES) == "checkout:co-1"
