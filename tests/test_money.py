"""Strict decimal-string money parsing (pure unit tests)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from svckit.money import Money, MoneyError, format_amount, major_to_minor, normalize_currency, parse_amount


@pytest.mark.parametrize(
    ("text", "currency", "minor"),
    [("3.15", "USD", 315), ("3.1", "USD", 310), ("3", "USD", 300), ("0.01", "USD", 1), ("500", "JPY", 500),
     ("1.234", "BHD", 1234), ("0", "EUR", 0), ("12345678901.99", "USD", 1234567890199)],
)  # fmt: skip
def test_parse_valid(text, currency, minor):
    assert parse_amount(text, currency) == minor
    assert parse_amount(format_amount(minor, currency), currency) == minor


@pytest.mark.parametrize(
    ("value", "currency", "reason"),
    [("3.155", "USD", "AMOUNT_PRECISION_EXCEEDED"), ("1.5", "JPY", "AMOUNT_PRECISION_EXCEEDED"),
     ("-1", "USD", "INVALID_AMOUNT"), ("1e3", "USD", "INVALID_AMOUNT"), ("", "USD", "INVALID_AMOUNT"),
     (" 1", "USD", "INVALID_AMOUNT"), ("01", "USD", "INVALID_AMOUNT"), ("1.", "USD", "INVALID_AMOUNT"),
     ("NaN", "USD", "INVALID_AMOUNT"), (3.15, "USD", "AMOUNT_NOT_A_STRING"), (315, "USD", "AMOUNT_NOT_A_STRING"),
     ("1", "XYZ", "UNKNOWN_CURRENCY"), ("9" * 5000, "USD", "AMOUNT_TOO_LARGE"),
     ("1" * 17 + ".00", "USD", "AMOUNT_TOO_LARGE"), ("1" * 16 + ".001", "BHD", "AMOUNT_TOO_LARGE")],
)  # fmt: skip
def test_parse_rejects(value, currency, reason):
    with pytest.raises(MoneyError) as exc:
        parse_amount(value, currency)
    assert exc.value.reason == reason


def test_the_largest_amounts_that_fit_int64_still_parse():
    assert parse_amount("9" * 16 + ".99", "USD") == 10**18 - 1
    assert parse_amount("9" * 18, "JPY") == 10**18 - 1


def test_format_and_major_units():
    assert format_amount(315, "USD") == "3.15"
    assert format_amount(-5, "USD") == "-0.05"
    assert format_amount(500, "JPY") == "500"
    assert format_amount(1, "BHD") == "0.001"
    assert major_to_minor(Decimal("-12.30"), "USD") == -1230
    with pytest.raises(MoneyError):
        major_to_minor("0.001", "USD")


def test_currency_normalization_and_money_arithmetic() -> None:
    assert normalize_currency("usd") == "USD"
    for bad in ("US", "USDD", "12A", "XXX"):
        with pytest.raises(MoneyError):
            normalize_currency(bad)
    assert Money(100, "USD") + Money(5, "USD") == Money(105, "USD")
    with pytest.raises(MoneyError):
        Money(1, "USD") + Money(1, "EUR")
    with pytest.raises(TypeError):
        Money(1.5, "USD")  # type: ignore[arg-type]  # a float on purpose: Money refuses one
