"""What settlement asks of the books, in the payment service's own terms: postings to the ledger and
movements of a seller's wallet, and the ports (:class:`Ledger`, :class:`Wallets`) the gRPC adapters of
:mod:`payment_svc.books_grpc` implement. No protobuf here.

Books, in the order's currency CUR, for an order of amount A with commission C (docs/ledger.md):
    Dr asset:psp_receivable:stripe/CUR A / Cr liability:seller_payable:<seller>/CUR A-C
    / Cr revenue:commission/CUR C
and for a refund R of it, with c the commission it gives back (proportional, so a full refund
returns exactly C): the mirror image, and the wallet is debited R-c.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from ledger_svc import naming

PSP = "stripe"
"""The PSP whose receivable a captured payment is (``asset:psp_receivable:stripe/<CUR>``)."""


class Side(enum.Enum):
    DEBIT = "debit"
    CREDIT = "credit"


@dataclass(frozen=True, slots=True)
class Posting:
    """One leg of a ledger transaction."""

    account: str
    side: Side
    amount_minor: int
    currency: str


@dataclass(frozen=True)
class LedgerTransaction:
    """A balanced set of postings, with what people and other systems read about it."""

    postings: tuple[Posting, ...]
    description: str
    external_ref: str
    metadata: Mapping[str, str] = field(default_factory=dict)


class ReferenceKind(enum.Enum):
    """The business event a wallet movement records."""

    PAYMENT_ORDER = "payment_order"
    REFUND = "refund"
    ADJUSTMENT = "adjustment"


@dataclass(frozen=True, slots=True)
class WalletMovement:
    """A credit (or, ``debit``, a debit) of a seller's wallet."""

    seller: str
    amount_minor: int
    currency: str
    debit: bool
    reference_kind: ReferenceKind
    reference_id: str


@dataclass(frozen=True, slots=True)
class Refusal:
    """An item of a batch the other service refused on its own (the rest of the batch stands)."""

    reason: str
    message: str


class Ledger(Protocol):
    """The ledger service, as settlement uses it. Failures raise :class:`~svckit.errors.DomainError`."""

    async def post(self, transaction: LedgerTransaction, key: str) -> int:
        """Post under an idempotency key; return the transaction's id (a replay returns the same)."""
        ...

    async def post_many(
        self, items: Sequence[tuple[LedgerTransaction, str]], batch_key: str
    ) -> list[Refusal | None]:
        """Post each (transaction, key) in one call; one answer per item."""
        ...

    async def reverse(
        self, transaction_id: int, description: str, external_ref: str, metadata: Mapping[str, str], key: str
    ) -> None: ...


class Wallets(Protocol):
    """The wallet service, as settlement uses it. Failures raise :class:`~svckit.errors.DomainError`."""

    async def move(self, movement: WalletMovement, key: str) -> None: ...

    async def move_many(self, items: Sequence[tuple[WalletMovement, str]]) -> list[Refusal | None]:
        """Apply each (movement, key) in one call; one answer per item."""
        ...

    async def debit_up_to(self, movement: WalletMovement, key: str) -> int:
        """Debit what the wallet holds, at most the movement's amount; returns the shortfall."""
        ...


def commission_share(commission_minor: int, amount_minor: int, refunded_minor: int) -> int:
    """Commission given back once ``refunded_minor`` of the order is refunded (half-up; all of it at 100 %)."""
    return (commission_minor * refunded_minor + amount_minor // 2) // amount_minor


def _legs(seller: str, amount: int, commission: int, currency: str, receivable: Side) -> list[Posting]:
    other = Side.CREDIT if receivable is Side.DEBIT else Side.DEBIT
    postings = [Posting(naming.psp_receivable(PSP, currency), receivable, amount, currency)]
    if amount - commission:
        postings.append(
            Posting(naming.seller_payable(seller, currency), other, amount - commission, currency)
        )
    if commission:
        postings.append(Posting(naming.revenue_commission(currency), other, commission, currency))
    return postings


def order_postings(seller: str, amount: int, commission: int, currency: str) -> list[Posting]:
    """A pay-in: the PSP owes us the amount; we owe the seller all of it but our commission."""
    return _legs(seller, amount, commission, currency, Side.DEBIT)


def refund_postings(
    seller: str, amount: int, commission: int, currency: str, shortfall: int = 0
) -> list[Posting]:
    """A refund: the mirror image of the pay-in's postings for the refunded part. ``shortfall``, the
    part of the seller's share the wallet did not hold (paid out already), is the seller's debt: it is
    debited to ``asset:seller_receivable:<seller>`` instead of the payable account, which (like the
    wallet) never goes negative."""
    postings = _legs(seller, amount, commission, currency, Side.CREDIT)
    if not shortfall:
        return postings
    if not 0 < shortfall <= amount - commission:
        raise ValueError(f"shortfall {shortfall} outside the seller's share {amount - commission}")
    payable = naming.seller_payable(seller, currency)
    kept = [p for p in postings if p.account != payable]
    if shortfall < amount - commission:
        kept.append(Posting(payable, Side.DEBIT, amount - commission - shortfall, currency))
    kept.append(Posting(naming.seller_receivable(seller, currency), Side.DEBIT, shortfall, currency))
    return kept
