"""An operator writes off a seller's debt (``asset:seller_receivable``): the part of refunds beyond the
seller's balance that the platform gives up collecting. Posted Dr ``expense:bad_debt/<CUR>`` / Cr
``asset:seller_receivable:<seller>/<CUR>`` under a key derived from the caller's idempotency key, so a
retry after a lost answer posts once; the wallet is not touched (a debt was never in it)."""

from __future__ import annotations

from dataclasses import dataclass

from payment_svc.payouts.deps import PayoutDeps
from payment_svc.payouts.domain import check_currency, check_seller_account
from svckit.errors import FailedPrecondition, InvalidArgument
from svckit.logging import get_logger

log = get_logger(__name__)

MAX_REASON = 500


@dataclass(frozen=True)
class WriteOff:
    transaction_id: int
    amount_minor: int
    currency: str
    debt_left_minor: int


class SellerDebts:
    def __init__(self, deps: PayoutDeps) -> None:
        self._d = deps

    async def write_off(
        self, seller_account: str, amount_minor: int, currency: str, reason: str, key: str
    ) -> WriteOff:
        check_seller_account(seller_account)
        check_currency(currency, "amount.currency")
        if not reason.strip():
            raise InvalidArgument("MISSING_FIELD", "a write-off needs a reason", field="reason")
        if len(reason) > MAX_REASON:
            raise InvalidArgument("TEXT_TOO_LONG", f"reason is longer than {MAX_REASON}", field="reason")
        if amount_minor <= 0:
            raise InvalidArgument(
                "AMOUNT_NOT_POSITIVE", "the amount to write off must be positive", field="amount"
            )
        if not key:
            raise InvalidArgument(
                "MISSING_FIELD", "a write-off needs an idempotency key", field="idempotency-key"
            )
        books = self._d.books
        debt = await books.debt(seller_account, currency)
        if amount_minor > debt:
            raise FailedPrecondition(
                "WRITE_OFF_EXCEEDS_DEBT",
                f"{seller_account} owes {debt} {currency}, less than the {amount_minor} to write off",
                {"debt_minor": debt},
            )
        try:
            tx = await books.post_write_off(
                f"debt-writeoff:{key}", seller_account, amount_minor, currency, reason.strip()
            )
        except FailedPrecondition as err:
            if err.reason != "INSUFFICIENT_BALANCE":
                raise
            # A pay-out netted (part of) the debt since it was read: the ledger's non-negative rule on
            # the receivable refused the posting, atomically.
            left = await books.debt(seller_account, currency)
            raise FailedPrecondition(
                "WRITE_OFF_EXCEEDS_DEBT",
                f"{seller_account} owes {left} {currency}, less than the {amount_minor} to write off",
                {"debt_minor": left},
            ) from err
        log.warning(
            "seller debt written off",
            seller_account=seller_account,
            amount_minor=amount_minor,
            currency=currency,
            ledger_transaction_id=tx,
        )
        return WriteOff(tx, amount_minor, currency, await books.debt(seller_account, currency))
