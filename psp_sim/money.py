"""Money helpers: integers in minor units everywhere, Decimal only to leave or enter major units."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

# ISO 4217 exponents that are not 2; Stripe treats these as zero- or three-decimal currencies.
_EXPONENTS = {
    "bif": 0,
    "clp": 0,
    "djf": 0,
    "gnf": 0,
    "jpy": 0,
    "kmf": 0,
    "krw": 0,
    "mga": 0,
    "pyg": 0,
    "rwf": 0,
    "ugx": 0,
    "vnd": 0,
    "vuv": 0,
    "xaf": 0,
    "xof": 0,
    "xpf": 0,
    "bhd": 3,
    "jod": 3,
    "kwd": 3,
    "omr": 3,
    "tnd": 3,
}

SUPPORTED_CURRENCIES = frozenset(
    {
        "usd",
        "eur",
        "gbp",
        "chf",
        "sek",
        "nok",
        "dkk",
        "pln",
        "czk",
        "cad",
        "aud",
        "nzd",
        "sgd",
        "hkd",
        "mxn",
        "brl",
        "inr",
        "zar",
        "aed",
        "ils",
        "huf",
        "ron",
        "thb",
        "myr",
        "php",
        "idr",
        "try",
        "isk",
    }
    | set(_EXPONENTS)
)

# Currencies Stripe moves only in whole units although its API keeps two decimals for them (ISK since
# 2023-04-14): charges and refunds must be multiples of 100.
WHOLE_UNITS_ONLY = frozenset({"isk"})


def exponent(currency: str) -> int:
    return _EXPONENTS.get(currency.lower(), 2)


def to_major(amount_minor: int, currency: str) -> Decimal:
    """Minor units → Decimal major units with exactly the currency's number of places."""
    exp = exponent(currency)
    return Decimal(amount_minor).scaleb(-exp).quantize(Decimal(1).scaleb(-exp))


def fee_for(amount_minor: int, percent: Decimal, fixed_minor: int) -> int:
    """Stripe-like processing fee: ``amount * percent / 100`` rounded half-up, plus a fixed part."""
    variable = (Decimal(amount_minor) * percent / Decimal(100)).quantize(Decimal(1), rounding=ROUND_HALF_UP)
    return int(variable) + fixed_minor
