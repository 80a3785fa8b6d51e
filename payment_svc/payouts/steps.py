"""Drive one pay-out through its steps: reserve in the wallet → post Dr seller_payable / Cr
payouts_in_transit → PSP transfer to the connected account → PSP payout from it → record the ids.

Each step is skipped when the pay-out already records its result, and repeats its remote call under
the same key otherwise, so running ``drive`` again after a crash at any point (or from a second run of
the period) finishes the pay-out once. A claim lease keeps two workers off one pay-out. A PSP fault
whose outcome is unknown is never a failure: the pay-out keeps its state, notes the fault, and the
janitor drives it again later with the same keys.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from prometheus_client import Counter

from payment_svc.payouts.deps import PayoutDeps
from payment_svc.payouts.domain import PayoutRow, PayoutState, SellerState, can_move
from payment_svc.payouts.repository import PayoutRepo
from payment_svc.psp import PspRejected, PspUnavailable
from svckit.errors import DomainError, FailedPrecondition, Internal
from svckit.logging import get_logger

log = get_logger(__name__)
P = PayoutState

PAYOUTS_FAILED = Counter(
    "payment_payouts_failed_total", "Pay-outs that failed (refused by the PSP or the wallet, or returned)"
)
TRANSFERS_NOT_REVERSED = Counter(
    "payment_payout_transfers_not_reversed_total",
    "Transfers of failed pay-outs the PSP refused to reverse (the money stays in the connected account)",
)


async def move(
    repo: PayoutRepo, p: PayoutRow, target: PayoutState, cause: str, detail: str = "", **values
) -> PayoutRow:
    """The one way a pay-out changes state: checked against the transition table, with history."""
    if p.state is not target and not can_move(p.state, target):
        raise Internal(
            "ILLEGAL_PAYOUT_TRANSITION", f"pay-out {p.payout_id} cannot move from {p.state} to {target}"
        )
    row = await repo.update_payout(p.payout_id, state=target.value, **values)
    await repo.add_transition(p.payout_id, p.state, target, cause, detail)
    if p.state is not target:
        await repo.payout_changed(row, p.state, cause)
    return row


async def reverse_transfer(deps: PayoutDeps, p: PayoutRow) -> str:
    """After a failed payout the PSP returns the money to the seller's connected account: bring it back
    to the platform with a transfer reversal (keyed by the pay-out, so a retry or a second answer
    reverses once). A fault is raised (the caller's step is retried); a refusal is logged as an alert
    and said in the answer, for an operator to settle. What was done, for the pay-out's history."""
    if p.psp_transfer_id is None:
        return ""
    try:
        reversal = await deps.psp.reverse_transfer(
            transfer_id=p.psp_transfer_id,
            amount_minor=p.amount_minor,
            currency=p.currency,
            payout_id=p.payout_id,
            idempotency_key=f"{p.payout_id}:transfer_reversal",
        )
    except PspRejected as exc:
        TRANSFERS_NOT_REVERSED.inc()
        log.error(
            "transfer of a failed pay-out not reversed; the money stays in the connected account",
            payout_id=p.payout_id,
            psp_transfer_id=p.psp_transfer_id,
            code=exc.code,
        )
        return f"; transfer {p.psp_transfer_id} not reversed: {exc.code}"
    return f"; transfer {p.psp_transfer_id} reversed by {reversal}"


class PayoutSteps:
    def __init__(self, deps: PayoutDeps) -> None:
        self._d = deps

    async def drive(self, payout_id: str, cause: str = "run") -> PayoutRow | None:
        """Take the next steps of a pay-out; the pay-out as left, or None when another worker holds it."""
        s = self._d.settings
        async with self._d.store.unit() as repo:
            p = await repo.claim_payout(payout_id, s.payout_claim_lease_seconds)
        if p is None:
            return None
        try:
            return await self._steps(p, cause)
        except PspUnavailable as exc:
            return await self._fault(p.payout_id, f"{exc.code}: {exc.message}")
        except DomainError as err:
            if err.kind.name in ("UNAVAILABLE", "ABORTED", "INTERNAL"):
                return await self._fault(p.payout_id, f"{err.reason}: {err.message}")
            raise
        except Exception as exc:
            await self._fault(p.payout_id, f"unexpected: {type(exc).__name__}")
            raise

    async def _fault(self, payout_id: str, error: str) -> PayoutRow | None:
        log.warning(
            "pay-out step not done; retried later with the same key", payout_id=payout_id, error=error
        )
        async with self._d.store.unit() as repo:
            await repo.note_fault(payout_id, error, self._d.settings.payout_retry_seconds)
            return await repo.get_payout(payout_id)

    async def _steps(self, p: PayoutRow, cause: str) -> PayoutRow:
        books, psp, store = self._d.books, self._d.psp, self._d.store
        if p.debt_netted_minor and p.net_tx_id is None:
            # The seller's debt first (refunds beyond their balance), ledger then wallet, each keyed.
            # The ledger first: it refuses, atomically, to take the receivable below zero, so a debt an
            # operator wrote off since the run looked fails the pay-out with nothing moved. Netting
            # stands even if the payment below fails: the debt was paid from the balance.
            try:
                tx = await books.post_netted(p.payout_id, p.seller_account, p.debt_netted_minor, p.currency)
            except FailedPrecondition as err:
                return await self._fail(p, cause, "ledger_" + err.reason.lower(), err.message)
            try:
                await books.debit_debt(p.payout_id, p.seller_account, p.debt_netted_minor, p.currency)
            except FailedPrecondition as err:
                await books.reverse(p.payout_id, tx, "netreverse", f"failed: wallet_{err.reason.lower()}")
                return await self._fail(p, cause, "wallet_" + err.reason.lower(), err.message)
            async with store.unit() as repo:
                p = await repo.update_payout(p.payout_id, net_tx_id=tx)
        if p.reservation_id is None:
            try:
                reservation = await books.reserve(p.payout_id, p.seller_account, p.amount_minor, p.currency)
            except FailedPrecondition as err:
                # The balance shrank since the run looked (a refund in between): nothing moved.
                return await self._fail(p, cause, "wallet_" + err.reason.lower(), err.message)
            async with store.unit() as repo:
                p = await repo.update_payout(p.payout_id, reservation_id=reservation)
        if p.ledger_tx_id is None:
            try:
                tx = await books.post_sent(p.payout_id, p.seller_account, p.amount_minor, p.currency)
            except FailedPrecondition as err:
                # The ledger owes the seller less than the wallet holds (a bug elsewhere): undo, alert.
                return await self._fail(p, cause, "ledger_" + err.reason.lower(), err.message)
            async with store.unit() as repo:
                p = await move(repo, p, P.RESERVED, cause, "wallet reserved, ledger posted", ledger_tx_id=tx)
        if p.psp_transfer_id is None:
            # Resumed after a step whose answer was lost: the PSP keeps our key 24 h only, so ask it
            # what it did before sending again (a PSP that cannot be asked is a fault: retried later).
            tr = await psp.find_transfer(p.payout_id) if p.attempts else None
            try:
                tr = tr or await psp.create_transfer(
                    amount_minor=p.amount_minor,
                    currency=p.currency,
                    destination=p.psp_account,
                    payout_id=p.payout_id,
                    idempotency_key=f"{p.payout_id}:transfer",
                )
            except PspRejected as exc:
                return await self._fail(p, cause, exc.code, exc.message)
            async with store.unit() as repo:
                p = await move(repo, p, P.TRANSFERRED, cause, f"transfer {tr.id}", psp_transfer_id=tr.id)
        if p.psp_payout_id is None:
            po = await psp.find_payout(p.psp_account, p.payout_id) if p.attempts else None
            try:
                po = po or await psp.create_payout(
                    amount_minor=p.amount_minor,
                    currency=p.currency,
                    account=p.psp_account,
                    payout_id=p.payout_id,
                    idempotency_key=f"{p.payout_id}:payout",
                )
            except PspRejected as exc:
                # The money sits in the connected account (transfers are not reversed yet): an
                # operator settles it, so the seller is paused with the pay-out.
                return await self._fail(p, cause, exc.code, exc.message, pause=True)
            async with store.unit() as repo:
                locked = await repo.get_payout(p.payout_id, for_update=True)
                assert locked is not None  # we hold the claim on a row that is never deleted
                if locked.state is P.TRANSFERRED:
                    p = await move(
                        repo,
                        locked,
                        P.IN_TRANSIT,
                        cause,
                        f"payout {po.id}",
                        psp_payout_id=po.id,
                        claimed_until=None,
                        last_error=None,
                        # When the janitor first asks the PSP, should its answer never come.
                        next_check_at=datetime.now(UTC)
                        + timedelta(seconds=self._d.settings.payout_check_seconds),
                    )
                else:  # the PSP's answer (an event) got here first and recorded the id
                    p = await repo.update_payout(p.payout_id, claimed_until=None)
            return p
        async with store.unit() as repo:
            await repo.release_claim(p.payout_id)
        return p

    async def _fail(
        self, p: PayoutRow, cause: str, code: str, message: str, pause: bool = False
    ) -> PayoutRow:
        """The PSP or the wallet refused a step on its merits: undo what was done, record the failure."""
        books = self._d.books
        reversed_ = await reverse_transfer(self._d, p)
        if p.ledger_tx_id is not None:
            await books.reverse(p.payout_id, p.ledger_tx_id, "reverse", f"failed: {code}")
        if p.reservation_id is not None:
            await books.release(p.payout_id, p.reservation_id)
        PAYOUTS_FAILED.inc()
        log.error("pay-out failed", payout_id=p.payout_id, seller_account=p.seller_account, failure_code=code)
        async with self._d.store.unit() as repo:
            row = await move(
                repo,
                p,
                P.FAILED,
                cause,
                f"{code}: {message}{reversed_}",
                failure_code=code,
                failure_message=message[:500],
                claimed_until=None,
            )
            if pause:
                await repo.set_seller_state(
                    p.seller_account, SellerState.PAYOUTS_PAUSED, f"payout_failed:{code}"
                )
            return row
