"""What every pay-out use case is built from."""

from __future__ import annotations

from dataclasses import dataclass

from payment_svc.config import PaymentSettings
from payment_svc.payouts.books import Books
from payment_svc.payouts.repository import PayoutStore
from payment_svc.psp import PspPort


@dataclass(frozen=True)
class PayoutDeps:
    store: PayoutStore
    books: Books
    psp: PspPort
    settings: PaymentSettings
