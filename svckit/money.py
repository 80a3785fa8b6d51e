"""Money as integer minor units plus an ISO 4217 code; strict decimal-string parsing at the edges.

Inside the system an amount is always ``int`` minor units; decimal strings exist only in the public
REST API and in PSP settlement files, and are converted here, never through ``float``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal

# ISO 4217 active codes and their minor-unit exponents (the standard's "minor unit" column).
# Codes without a minor unit in ISO (e.g. XAU) are not payable and therefore absent.
_EXPONENTS: dict[str, int] = {
    **dict.fromkeys(
        [
            "AED",
            "AFN",
            "ALL",
            "AMD",
            "ANG",
            "AOA",
            "ARS",
            "AUD",
            "AWG",
            "AZN",
            "BAM",
            "BBD",
            "BDT",
            "BGN",
            "BMD",
            "BND",
            "BOB",
            "BRL",
            "BSD",
            "BTN",
            "BWP",
            "BYN",
            "BZD",
            "CAD",
            "CDF",
            "CHF",
            "CNY",
            "COP",
            "CRC",
            "CUP",
            "CVE",
            "CZK",
            "DKK",
            "DOP",
            "DZD",
            "EGP",
            "ERN",
            "ETB",
            "EUR",
            "FJD",
            "FKP",
            "GBP",
            "GEL",
            "GHS",
            "GIP",
            "GMD",
            "GTQ",
            "GYD",
            "HKD",
            "HNL",
            "HTG",
            "HUF",
            "IDR",
            "ILS",
            "INR",
            "IRR",
            "JMD",
            "KES",
            "KGS",
            "KHR",
            "KPW",
            "KYD",
            "KZT",
            "LAK",
            "LBP",
            "LKR",
            "LRD",
            "LSL",
            "MAD",
            "MDL",
            "MGA",
            "MKD",
            "MMK",
            "MNT",
            "MOP",
            "MRU",
            "MUR",
            "MVR",
            "MWK",
            "MXN",
            "MYR",
            "MZN",
            "NAD",
            "NGN",
            "NIO",
            "NOK",
            "NPR",
            "NZD",
            "PAB",
            "PEN",
            "PGK",
            "PHP",
            "PKR",
            "PLN",
            "QAR",
            "RON",
            "RSD",
            "RUB",
            "SAR",
            "SBD",
            "SCR",
            "SDG",
            "SEK",
            "SGD",
            "SHP",
            "SLE",
            "SOS",
            "SRD",
            "SSP",
            "STN",
            "SVC",
            "SYP",
            "SZL",
            "THB",
            "TJS",
            "TMT",
            "TOP",
            "TRY",
            "TTD",
            "TWD",
            "TZS",
            "UAH",
            "USD",
            "UYU",
            "UZS",
            "VES",
            "WST",
            "XCD",
            "YER",
            "ZAR",
            "ZMW",
            "ZWG",
        ],
        2,
    ),
    **dict.fromkeys(
        [
            "BIF",
            "CLP",
            "DJF",
            "GNF",
            "ISK",
            "JPY",
            "KMF",
            "KRW",
            "PYG",
            "RWF",
            "UGX",
            "UYI",
            "VND",
            "VUV",
            "XAF",
            "XOF",
            "XPF",
        ],
        0,
    ),
    **dict.fromkeys(["BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"], 3),
    **dict.fromkeys(["CLF", "UYW"], 4),
}

_DECIMAL_RE = re.compile(r"^(0|[1-9][0-9]*)(?:\.([0-9]+))?$")
MAX_MINOR_DIGITS = 18
"""Amounts are int64 minor units: 18 digits always fit (19 may not)."""
_CURRENCY_RE = re.compile(r"^[A-Z]{3}$")


class MoneyError(ValueError):
    """A malformed amount or currency; ``reason`` is a stable code for the API edge."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def is_known_currency(code: str) -> bool:
    return code in _EXPONENTS


def exponent(currency: str) -> int:
    try:
        return _EXPONENTS[currency]
    except KeyError:
        raise MoneyError("UNKNOWN_CURRENCY", f"{currency!r} is not an ISO 4217 currency code") from None


def normalize_currency(code: str) -> str:
    """Upper-case and validate an ISO 4217 code (``usd`` → ``USD``)."""
    if not isinstance(code, str) or not _CURRENCY_RE.match(code.upper()):
        raise MoneyError("INVALID_CURRENCY", f"currency must be a 3-letter ISO 4217 code, got {code!r}")
    upper = code.upper()
    exponent(upper)
    return upper


def parse_amount(text: str, currency: str) -> int:
    """Parse a non-negative decimal string into minor units, refusing more decimals than the currency has.

    ``"3.15"`` USD → 315, ``"500"`` JPY → 500, ``"1.234"`` BHD → 1234. Rejected: ``"3.155"`` USD, ``"-1"``,
    ``"1e3"``, ``" 1"``, ``""``, ``"01"``, ``"1."``, and anything that is not a string.
    """
    if not isinstance(text, str):
        raise MoneyError(
            "AMOUNT_NOT_A_STRING", 'amount must be a decimal string such as "3.15", not a JSON number'
        )
    exp = exponent(currency)
    match = _DECIMAL_RE.match(text)
    if not match:
        shown = text if len(text) <= 40 else text[:40] + "..."
        raise MoneyError(
            "INVALID_AMOUNT", f"amount must be a plain non-negative decimal string, got {shown!r}"
        )
    whole, frac = match.group(1), match.group(2) or ""
    # Counted before any int(): converting thousands of digits costs CPU (and fails past 4300).
    if len(whole.lstrip("0")) + exp > MAX_MINOR_DIGITS:
        raise MoneyError(
            "AMOUNT_TOO_LARGE", f"amount has {len(whole)} whole digits; too large for {currency}"
        )
    if len(frac) > exp:
        raise MoneyError(
            "AMOUNT_PRECISION_EXCEEDED",
            f"{currency} has {exp} decimal places; {text!r} has {len(frac)}",
        )
    return int(whole) * 10**exp + (int(frac.ljust(exp, "0")) if exp else 0)


def format_amount(minor: int, currency: str) -> str:
    """Minor units → decimal string with exactly the currency's decimals (315 USD → ``"3.15"``)."""
    exp = exponent(currency)
    sign = "-" if minor < 0 else ""
    digits = str(abs(minor)).rjust(exp + 1, "0")
    return f"{sign}{digits[:-exp]}.{digits[-exp:]}" if exp else f"{sign}{digits}"


def major_to_minor(value: Decimal | str, currency: str) -> int:
    """Exact conversion of a major-unit amount (e.g. from a settlement CSV) that may be negative."""
    d = Decimal(value)
    scaled = d.scaleb(exponent(currency))
    if scaled != scaled.to_integral_value():
        raise MoneyError("AMOUNT_PRECISION_EXCEEDED", f"{value} has more decimals than {currency} allows")
    return int(scaled)


@dataclass(frozen=True, slots=True)
class Money:
    """An amount in minor units with its currency; arithmetic refuses to mix currencies."""

    amount_minor: int
    currency: str

    def __post_init__(self) -> None:
        if not isinstance(self.amount_minor, int) or isinstance(self.amount_minor, bool):
            raise TypeError("amount_minor must be an int")
        exponent(self.currency)

    def _same(self, other: Money) -> None:
        if self.currency != other.currency:
            raise MoneyError("CURRENCY_MISMATCH", f"cannot combine {self.currency} with {other.currency}")

    def __add__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.amount_minor + other.amount_minor, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.amount_minor - other.amount_minor, self.currency)

    def __neg__(self) -> Money:
        return Money(-self.amount_minor, self.currency)

    def __str__(self) -> str:
        return f"{format_amount(self.amount_minor, self.currency)} {self.currency}"
