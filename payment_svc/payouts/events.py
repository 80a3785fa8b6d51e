"""The PSP's answers about a pay-out: ``payout.paid``, ``payout.failed``, ``payout.canceled``, applied from
the pay-out inbox (``.inbox``) in groups, whether they came as webhook events or from the janitor asking
the PSP.

- paid: capture the wallet reservation and post Dr payouts_in_transit / Cr asset:bank:operating (a
  group's paid answers share one wallet ``ApplyBatch`` and one ledger ``PostTransactions``, each item
  under the key the single calls use), then move them to PAID in one statement with their history and
  events;
- failed or canceled: release the reservation, reverse the sent posting (the seller is owed the money
  again), pause the seller's pay-outs with the PSP's failure code, and alert (error log + metric);
- paid, then failed (the bank returned it): reverse the paid posting and the sent posting and credit
  the captured money back to the wallet, then as failed.

Every remote call is keyed by the pay-out id and the step, so a duplicate or redelivered fact, a crash
between the calls and the commit, or two workers, apply each effect once; the pay-outs' row locks order
them, and the transition table turns anything late or repeated into a no-op.
"""

from __future__ import annotations

from collections.abc import Sequence

from prometheus_client import Counter

from payment_svc.payouts.deps import PayoutDeps
from payment_svc.payouts.domain import PayoutRow, PayoutState, SellerState
from payment_svc.payouts.repository import PayoutRepo
from payment_svc.payouts.steps import PAYOUTS_FAILED, move, reverse_transfer
from payment_svc.psp_objects import PayoutView
from svckit.errors import DomainError
from svckit.logging import get_logger

log = get_logger(__name__)
P = PayoutState

PAYOUTS_RETURNED = Counter("payment_payouts_returned_total", "Pay-outs reported paid, then failed")

PAYABLE = (P.TRANSFERRED, P.IN_TRANSIT)
"""The states a ``paid`` answer moves from (TRANSFERRED: the answer beat our record of the PSP's id)."""


class PayoutAnswers:
    def __init__(self, deps: PayoutDeps) -> None:
        self._d = deps

    async def paid(
        self, repo: PayoutRepo, paid: Sequence[tuple[PayoutRow, str, str]]
    ) -> list[PayoutRow | DomainError]:
        """Apply ``paid`` to locked pay-outs in a payable state, each (pay-out, PSP payout id, detail):
        the books in one call each (the single calls for one alone: cheaper than batches of one), then
        the state changes in one statement per state left. The pay-out as moved, or the books' refusal
        of it (it stays as it was)."""
        books = self._d.books
        if len(paid) == 1:
            p = paid[0][0]
            assert p.reservation_id is not None  # TRANSFERRED is after RESERVED
            try:
                await books.capture(p.payout_id, p.reservation_id)
                txs: list[int | DomainError] = [
                    await books.post_paid(p.payout_id, p.amount_minor, p.currency)
                ]
            except DomainError as err:
                txs = [err]
        else:
            txs = await books.paid_many(
                [(p.payout_id, p.reservation_id or "", p.amount_minor, p.currency) for p, _, _ in paid]
            )
        details = {p.payout_id: detail for p, _, detail in paid}
        answers: dict[str, PayoutRow | DomainError] = {}
        for from_state in PAYABLE:
            todo = [
                (p, psp_id, detail, tx)
                for (p, psp_id, detail), tx in zip(paid, txs, strict=True)
                if p.state is from_state and not isinstance(tx, DomainError)
            ]
            if not todo:
                continue
            moved = await repo.advance_many(
                from_state,
                P.PAID,
                "psp_event:payout.paid",
                {
                    "payout_id": ("text", [p.payout_id for p, _, _, _ in todo]),
                    "paid_tx_id": ("bigint", [tx for _, _, _, tx in todo]),
                    "psp_payout_id": ("text", [psp_id for _, psp_id, _, _ in todo]),
                },
                detail=lambda row: details[row.payout_id],
            )
            answers.update((row.payout_id, row) for row in moved)
        for (p, _, _), tx in zip(paid, txs, strict=True):
            if isinstance(tx, DomainError):
                answers[p.payout_id] = tx
        return [answers.get(p.payout_id, p) for p, _, _ in paid]

    async def failed(self, repo: PayoutRepo, p: PayoutRow, po: PayoutView, cause: str) -> PayoutRow | None:
        """Apply ``failed`` / ``canceled`` to a locked pay-out; the pay-out as moved, None when its
        state is past it (a duplicate, or final already)."""
        if p.state not in (P.TRANSFERRED, P.IN_TRANSIT, P.PAID):
            return None
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
        moved = await move(
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
        return moved
