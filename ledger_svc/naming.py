"""The chart of accounts' naming scheme, ``type:purpose[:id][/CUR]``, shared by every service that posts.

Build names with these helpers instead of formatting strings by hand, so a typo cannot open a new
account on first use. A ledger account holds one currency, so every account the marketplace keeps
once per currency carries that currency as a ``/<ISO 4217 code>`` suffix (``revenue:commission/EUR``,
``liability:seller_payable:seller_42/JPY``); the ledger refuses an entry whose currency is not the
suffix. Names without a suffix stay valid for generic accounts. The scheme is documented in
``docs/ledger.md``.
"""

from __future__ import annotations

import enum
import functools
import re

from svckit.errors import InvalidArgument
from svckit.identifiers import EXTERNAL_ID
from svckit.money import is_known_currency


class AccountType(enum.StrEnum):
    ASSET = "asset"
    LIABILITY = "liability"
    EQUITY = "equity"
    REVENUE = "revenue"
    EXPENSE = "expense"

    @property
    def debit_normal(self) -> bool:
        """Assets and expenses grow with debits; liabilities, equity and revenue with credits."""
        return self in (AccountType.ASSET, AccountType.EXPENSE)


_SEGMENT = re.compile(r"^[a-z0-9_.\-]{1,64}$")
_ID_SEGMENT = EXTERNAL_ID  # a seller id is always a valid id segment
_CURRENCY = re.compile(r"^[A-Z]{3}$")

SELLER_PAYABLE_PREFIX = "liability:seller_payable:"
"""Every seller's payable accounts start with this (``<prefix><seller>/<CUR>``)."""


def _id(value: str) -> str:
    if not _ID_SEGMENT.match(value):
        raise InvalidArgument("INVALID_ACCOUNT_NAME", f"invalid id segment {value!r}", field="name")
    return value


def _suffix(currency: str) -> str:
    if not (_CURRENCY.match(currency) and is_known_currency(currency)):
        raise InvalidArgument(
            "UNKNOWN_CURRENCY", f"{currency!r} is not an ISO 4217 currency code", field="currency"
        )
    return f"/{currency}"


def psp_receivable(psp: str, currency: str) -> str:
    """What the PSP owes us for captured payments, e.g. ``asset:psp_receivable:stripe/EUR``."""
    return f"asset:psp_receivable:{_id(psp)}{_suffix(currency)}"


def seller_payable(seller_id: str, currency: str) -> str:
    """What we owe a seller, e.g. ``liability:seller_payable:seller_42/USD``; mirrors the seller's
    wallet in that currency."""
    return f"{SELLER_PAYABLE_PREFIX}{_id(seller_id)}{_suffix(currency)}"


SELLER_RECEIVABLE_PREFIX = "asset:seller_receivable:"
"""A seller's debts start with this (``<prefix><seller>/<CUR>``)."""

# Accounts created on first use with the non-negative rule: a seller is never owed less than zero, and
# never owes less than zero (a pay-out netting a debt and an operator writing it off at once cannot both
# take it: the ledger refuses the second atomically).
NON_NEGATIVE_PREFIXES: tuple[str, ...] = (SELLER_PAYABLE_PREFIX, SELLER_RECEIVABLE_PREFIX)


def seller_receivable(seller_id: str, currency: str) -> str:
    """What a seller owes us, e.g. ``asset:seller_receivable:seller_42/USD``: the part of a refund the
    seller's wallet did not hold (paid out already); the next pay-out nets it off."""
    return f"{SELLER_RECEIVABLE_PREFIX}{_id(seller_id)}{_suffix(currency)}"


def revenue_commission(currency: str) -> str:
    """The platform's commission, e.g. ``revenue:commission/USD``."""
    return f"revenue:commission{_suffix(currency)}"


def bank_operating(currency: str) -> str:
    """The platform's operating bank account, e.g. ``asset:bank:operating/USD``."""
    return f"asset:bank:operating{_suffix(currency)}"


def expense_psp_fees(currency: str) -> str:
    """Fees the PSP keeps at settlement, e.g. ``expense:psp_fees/USD``."""
    return f"expense:psp_fees{_suffix(currency)}"


def expense_dispute_losses(currency: str) -> str:
    """Charges the PSP took back for a dispute (a won dispute's reversal gives it back), e.g.
    ``expense:dispute_losses/USD``."""
    return f"expense:dispute_losses{_suffix(currency)}"


def expense_psp_adjustments(currency: str) -> str:
    """The PSP's other adjustments of our balance, booked from the settlement file for a person to review,
    e.g. ``expense:psp_adjustments/USD``."""
    return f"expense:psp_adjustments{_suffix(currency)}"


def expense_bad_debt(currency: str) -> str:
    """Seller debts the platform gave up on (an operator's write-off), e.g. ``expense:bad_debt/USD``."""
    return f"expense:bad_debt{_suffix(currency)}"


def payouts_in_transit(currency: str) -> str:
    """Payouts sent and not yet paid, e.g. ``liability:payouts_in_transit/USD``."""
    return f"liability:payouts_in_transit{_suffix(currency)}"


def split_seller_payable(name: str) -> tuple[str, str | None] | None:
    """``liability:seller_payable:<seller>[/CUR]`` → (seller, currency or None); None for other names."""
    if not name.startswith(SELLER_PAYABLE_PREFIX):
        return None
    rest = name.removeprefix(SELLER_PAYABLE_PREFIX)
    seller, slash, currency = rest.partition("/")
    return seller, (currency if slash else None)


@functools.lru_cache(
    maxsize=65536
)  # every posting parses its names; hot accounts repeat (a refusal is not cached)
def parse_account(name: str) -> tuple[AccountType, str | None]:
    """Validate ``type:purpose[:id][/CUR]``; return its type and its currency suffix (None without)."""
    base, slash, currency = name.partition("/")
    if slash and not (_CURRENCY.match(currency) and is_known_currency(currency)):
        raise InvalidArgument(
            "INVALID_ACCOUNT_NAME",
            f"the suffix of {name!r} must be a known ISO 4217 code such as /USD",
            field="name",
        )
    parts = base.split(":")
    if not 2 <= len(parts) <= 3 or not all(_SEGMENT.match(p) for p in parts[:2]):
        raise InvalidArgument(
            "INVALID_ACCOUNT_NAME",
            f"account name must look like type:purpose[:id][/CUR], got {name!r}",
            field="name",
        )
    if len(parts) == 3 and not _ID_SEGMENT.match(parts[2]):
        raise InvalidArgument("INVALID_ACCOUNT_NAME", f"invalid id segment in {name!r}", field="name")
    try:
        return AccountType(parts[0]), (currency if slash else None)
    except ValueError:
        raise InvalidArgument(
            "INVALID_ACCOUNT_TYPE",
            f"account type must be one of {', '.join(t.value for t in AccountType)}, got {parts[0]!r}",
            field="name",
        ) from None


def parse_account_name(name: str) -> AccountType:
    """Validate ``type:purpose[:id][/CUR]`` and return its type."""
    return parse_account(name)[0]


def check_currency(name: str, currency: str) -> None:
    """Refuse ``currency`` for an account whose name carries another currency (``CURRENCY_MISMATCH``)."""
    suffix = parse_account(name)[1]
    if suffix is not None and suffix != currency:
        raise InvalidArgument(
            "CURRENCY_MISMATCH",
            f"account {name} is named for {suffix}, not {currency}",
            field="currency",
            account=name,
        )
