"""The chart of accounts' naming scheme, ``type:purpose[:id]``, shared by every service that posts.

Build names with these helpers instead of formatting strings by hand, so a typo cannot open a new
account on first use. The scheme is documented in ``docs/ledger.md``.
"""

from __future__ import annotations

import enum
import functools
import re

from svckit.errors import InvalidArgument


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
_ID_SEGMENT = re.compile(r"^[A-Za-z0-9_.\-@]{1,128}$")

# Fixed accounts of the marketplace.
REVENUE_COMMISSION = "revenue:commission"
BANK_OPERATING = "asset:bank:operating"
EXPENSE_PSP_FEES = "expense:psp_fees"
PAYOUTS_IN_TRANSIT = "liability:payouts_in_transit"

# Accounts created on first use with the non-negative rule (a seller is never owed less than zero).
NON_NEGATIVE_PREFIXES: tuple[str, ...] = ("liability:seller_payable:",)


def _id(value: str) -> str:
    if not _ID_SEGMENT.match(value):
        raise InvalidArgument("INVALID_ACCOUNT_NAME", f"invalid id segment {value!r}", field="name")
    return value


def psp_receivable(psp: str) -> str:
    """What the PSP owes us for captured payments, e.g. ``asset:psp_receivable:stripe``."""
    return f"asset:psp_receivable:{_id(psp)}"


def seller_payable(seller_id: str) -> str:
    """What we owe a seller, e.g. ``liability:seller_payable:seller_42``; mirrors the seller's wallet."""
    return f"liability:seller_payable:{_id(seller_id)}"


@functools.lru_cache(
    maxsize=65536
)  # every posting parses its names; hot accounts repeat (a refusal is not cached)
def parse_account_name(name: str) -> AccountType:
    """Validate ``type:purpose[:id]`` and return its type."""
    parts = name.split(":")
    if not 2 <= len(parts) <= 3 or not all(_SEGMENT.match(p) for p in parts[:2]):
        raise InvalidArgument(
            "INVALID_ACCOUNT_NAME",
            f"account name must look like type:purpose[:id], got {name!r}",
            field="name",
        )
    if len(parts) == 3 and not _ID_SEGMENT.match(parts[2]):
        raise InvalidArgument("INVALID_ACCOUNT_NAME", f"invalid id segment in {name!r}", field="name")
    try:
        return AccountType(parts[0])
    except ValueError:
        raise InvalidArgument(
            "INVALID_ACCOUNT_TYPE",
            f"account type must be one of {', '.join(t.value for t in AccountType)}, got {parts[0]!r}",
            field="name",
        ) from None
