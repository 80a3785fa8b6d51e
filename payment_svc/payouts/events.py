"""The PSP's answers about a pay-out: ``payout.paid``, ``payout.failed``, ``payout.canceled``, whether they
come as webhook events or from the janitor asking the PSP.

- paid: capture the wallet reservation and post Dr payouts_in_transit / Cr asset:bank:operating (the
  answers arriving together share one wallet ``ApplyBatch`` and one ledger ``PostTransactions``);
- failed or canceled: release the reservation, reverse the sent posting (the seller is owed the money
  again), pause the seller's pay-outs with the PSP's failure code, and alert (error log + metric);
- paid, then failed (the bank returned it): reverse the paid posting and the sent posting and credit
  the captured money back to the wallet, then as failed.

Every remote call is keyed by the pay-out id and the step, so a duplicate or redelivered event, or an
event and the janitor racing, applies each effect once; the pay-out's row lock orders them, and the
transition table turns anything late or repeated into a no-op.
"""

from __future__ import annotations

from prometheus_client import Counter

from payment_svc.payouts.deps import PayoutDeps
from payment_svc.payouts.domain import PayoutRow, PayoutState, SellerState
from payment_svc.payouts.repository import PayoutRepo
from payment_svc.payouts.steps import PAYOUTS_FAILED, move, reverse_transfer
from payment_svc.psp_objects import PayoutView
from svckit.coalescing import Coalescer
from svckit.errors import DomainError
from svckit.logging import get_logger

log = get_logger(__name__)
P = PayoutState

PAYOUTS_RETURNED = Counter("payment_payouts_returned_total", "Pay-outs reported paid, then failed")


_Paid = tuple[str, str, int, str]  # payout id, reservation id, amount, currency


class PayoutAnswers:
    def __init__(self, deps: PayoutDeps) -> None:
        self._d = deps
        # ``payout.paid`` answers arrive one webhook each, often many at once (a bank day's payouts):
        # their captures and postings share one wallet and one ledger call (svckit.coalescing), each
        # under the key the single calls use. Every event keeps its own transaction and row lock.
        self._paid_books: Coalescer[_Paid, int | DomainError] = Coalescer(
            self._paid_group, name="payout-paid", max_group=500, max_in_flight=1
        )

    async def close(self) -> None:
        await self._paid_books.close()

    async def _paid_group(self, group: list[_Paid]) -> list[int | DomainError]:
        books = self._d.books
        if len(group) == 1:
            # No company: the single calls, the reference path (and cheaper than batches of one).
            payout_id, reservation_id, amount, currency = group[0]
            try:
                await books.capture(payout_id, reservation_id)
                return [await books.post_paid(payout_id, amount, currency)]
            except DomainError as err:
                return [err]
        return await books.paid_many(group)

    async def apply_event(self, repo: PayoutRepo, po: PayoutView, cause: str) -> list[str]:
        """Apply the PSP's payout object inside the caller's transaction; the pay-outs it changed."""
        p = None
        if po.id:
            p = await repo.payout_by_psp_id(po.id, for_update=True)
        if p is None and po.payout_id:
            # The event can beat our record of the PSP payout's id: find it by our id in metadata.
            p = await repo.get_payout(po.payout_id, for_update=True)
        if p is None:
            log.info("PSP payout event for a payout that is not ours", psp_payout_id=po.id)
            return []
        if p.psp_account != (po.account or p.psp_account) or (p.psp_payout_id not in (None, po.id)):
            log.error(
                "PSP payout event does not match our pay-out", payout_id=p.payout_id, psp_payout_id=po.id
            )
            return []
        changed = await self.apply(repo, p, po, cause)
        return [p.payout_id] if changed else []

    async def apply(self, repo: PayoutRepo, p: PayoutRow, po: PayoutView, cause: str) -> bool:
        """Apply a payout status to a locked pay-out. True when it changed."""
        if po.status == "paid":
            return await self._paid(repo, p, po, cause)
        if po.status in ("failed", "canceled"):
            return await self._failed(repo, p, po, cause)
        return False  # pending / in_transit: nothing final yet

    async def _paid(self, repo: PayoutRepo, p: PayoutRow, po: PayoutView, cause: str) -> bool:
        if p.state not in (P.TRANSFERRED, P.IN_TRANSIT):
            return False  # already paid (a duplicate), or failed for good
        assert p.reservation_id is not None  # TRANSFERRED is after RESERVED
        tx = await self._paid_books.submit(
            (p.payout_id, p.reservation_id, p.amount_minor, p.currency), key=p.payout_id
        )
        if isinstance(tx, DomainError):
            raise tx
        await move(repo, p, P.PAID, cause, f"payout {po.id} paid", paid_tx_id=tx, psp_payout_id=po.id)
        return True

    async def _failed(self, repo: PayoutRepo, p: PayoutRow, po: PayoutView, cause: str) -> bool:
        if p.state not in (P.TRANSFERRED, P.IN_TRANSIT, P.PAID):
            return False
        books = self._d.books
        code = po.failure_code or ("canceled" if po.status == "canceled" else "failed")
        message = po.failure_message or f"the PSP reports the payout {po.status}"
        assert p.reservation_id is not None and p.ledger_tx_id is not None  # set before TRANSFERRED
        reversed_ = await reverse_transfer(self._d, p)
        if p.state is P.PAID:
            # Returned after it was paid: the captured money comes back to the seller.
            PAYOUTS_RETURNED.inc()
            if p.paid_tx_id is not None:
                await books.reverse(p.payout_id, p.paid_tx_id, "paid-reversal", f"returned: {code}")
            await books.credit_back(p.payout_id, p.seller_account, p.amount_minor, p.currency)
        else:
            await books.release(p.payout_id, p.reservation_id)
        await books.reverse(p.payout_id, p.ledger_tx_id, "reverse", f"{po.status}: {code}")
        target = P.CANCELED if po.status == "canceled" and p.state is not P.PAID else P.FAILED
        await move(
            repo,
            p,
            target,
            cause,
            f"payout {po.id} {po.status}: {code}{reversed_}",
            failure_code=code,
            failure_message=message[:500],
            psp_payout_id=po.id,
        )
        await repo.set_seller_state(
            p.seller_account, SellerState.PAYOUTS_PAUSED, f"payout_{po.status}:{code}"
        )
        PAYOUTS_FAILED.inc()
        log.error(
            "pay-out failed at the PSP; seller paused",
            payout_id=p.payout_id,
            seller_account=p.seller_account,
            psp_payout_id=po.id,
            failure_code=code,
            was_paid=p.state is P.PAID,
        )
        return True
