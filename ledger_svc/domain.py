"""The ledger's domain values: accounts, postings, transactions, balances and verification findings.

Plain frozen values, free of transport and storage: the service takes and returns them, the
servicer translates them to and from protobuf (``ledger_svc/wire.py``).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from ledger_svc.naming import AccountType

__all__ = [
    "Account",
    "AccountType",
    "Balance",
    "Direction",
    "EntryLine",
    "EntryView",
    "Finding",
    "FindingKind",
    "Posting",
    "Transaction",
    "VerifyReport",
]


class Direction(enum.StrEnum):
    DEBIT = "D"
    CREDIT = "C"


@dataclass(frozen=True)
class Account:
    name: str
    type: AccountType
    currency: str
    created_at: datetime
    non_negative: bool = False
    closed_at: datetime | None = None


@dataclass(frozen=True)
class EntryLine:
    account: str
    direction: Direction
    amount_minor: int
    currency: str


@dataclass(frozen=True)
class Posting:
    entries: tuple[EntryLine, ...]
    description: str = ""
    external_ref: str = ""
    metadata: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Transaction:
    id: int
    entries: tuple[EntryLine, ...]
    description: str
    external_ref: str
    metadata: Mapping[str, str]
    posted_at: datetime
    reverses_id: int | None = None
    # Set once the transaction is linked into the chain, i.e. after its commit.
    sequence: int = 0
    hash: bytes = b""
    previous_hash: bytes = b""


@dataclass(frozen=True)
class Balance:
    account: str
    currency: str
    debits_minor: int
    credits_minor: int
    balance_minor: int
    last_transaction_id: int


@dataclass(frozen=True)
class EntryView:
    entry_id: int
    transaction_id: int
    direction: Direction
    amount_minor: int
    currency: str
    posted_at: datetime


class FindingKind(enum.StrEnum):
    HASH_MISMATCH = "HASH_MISMATCH"
    CHAIN_BROKEN = "CHAIN_BROKEN"
    SEQUENCE_GAP = "SEQUENCE_GAP"
    UNBALANCED_TRANSACTION = "UNBALANCED_TRANSACTION"
    BALANCE_MISMATCH = "BALANCE_MISMATCH"
    CHAIN_HEAD_MISMATCH = "CHAIN_HEAD_MISMATCH"
    CURRENCY_MISMATCH = "CURRENCY_MISMATCH"
    NEGATIVE_BALANCE = "NEGATIVE_BALANCE"
    UNCHAINED_TRANSACTION = "UNCHAINED_TRANSACTION"


@dataclass(frozen=True)
class Finding:
    kind: FindingKind
    transaction_id: int = 0
    account: str = ""
    expected: str = ""
    actual: str = ""
    detail: str = ""


@dataclass
class VerifyReport:
    findings: list[Finding] = field(default_factory=list)
    transactions_checked: int = 0
    accounts_checked: int = 0
    truncated: bool = False
    pending_link: int = 0

    @property
    def ok(self) -> bool:
        return not self.findings and not self.truncated
