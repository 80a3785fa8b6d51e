"""CreateRefund: reserve the amount on the order, send the refund to the PSP under the refund id as
idempotency key, and apply the PSP's answer (or a later refund event) to the refund and its order."""

from __future__ import annotations

from dataclasses import replace

from prometheus_client import Counter

from payment_svc.domain import CAPTURED, OrderState
from payment_svc.psp import PspError, PspUnavailable
from payment_svc.psp_objects import RefundView
from payment_svc.rows import OrderRow, RefundRow
from payment_svc.uow import UnitOfWork
from payment_svc.usecases.commands import off_step, refund_id_for
from payment_svc.usecases.deps import UseCase
from svckit.db import one_row
from svckit.errors import FailedPrecondition, Internal, InvalidArgument, NotFound
from svckit.logging import get_logger
from svckit.money import format_amount

log = get_logger(__name__)
S = OrderState

# The failure reason of a refund whose PaymentIntent the PSP does not know: our books say the money was
# captured and the PSP says there is no such payment. That is a disagreement for an operator, never an
# ordinary failed refund (it would tell the buyer "no" about money the PSP may still hold).
PSP_PAYMENT_UNKNOWN = "psp_payment_unknown"

REFUNDS_OF_UNKNOWN_PAYMENTS = Counter(
    "payment_refunds_of_unknown_payments_total",
    "Refunds refused because the PSP does not know the order's payment (alert on any increase)",
)


class Refunds(UseCase):
    async def create_refund(
        self, payment_order_id: str, amount_minor: int, reason: str, idempotency_key: str
    ) -> tuple[RefundRow, OrderRow]:
        if amount_minor < 0:
            raise InvalidArgument("AMOUNT_NOT_POSITIVE", "refund amount must be positive", field="amount")
        if reason and reason not in ("duplicate", "fraudulent", "requested_by_customer"):
            raise InvalidArgument(
                "INVALID_REFUND_REASON",
                "reason must be duplicate, fraudulent or requested_by_customer",
                field="reason",
            )
        refund_id = refund_id_for(payment_order_id, idempotency_key)
        async with self._uows.transaction() as uow:
            refund = await uow.repo.get_refund(refund_id)
            retried = refund is not None
            if refund is None:
                refund = await self._reserve_refund(uow, payment_order_id, amount_minor, reason, refund_id)
        if refund.state == "PENDING" and refund.psp_reference is None:
            if retried:
                # The earlier call may have reached the PSP, which forgets the key after 24 h: asked
                # first, as the janitor does (chaos seed 607: sent again blind, it refunded twice).
                await self._ask_again(refund)
            else:
                await self._send_refund(refund)
        async with self._uows.reader() as uow:
            refund = one_row(await uow.repo.get_refund(refund_id), "refund just stored")
            order = one_row(await uow.repo.get_order(payment_order_id), "order of a stored refund")
        if refund.failure_reason == PSP_PAYMENT_UNKNOWN:  # a retry of the call gets the same answer
            raise FailedPrecondition(
                "PSP_PAYMENT_UNKNOWN",
                f"the PSP does not know payment {order.psp_reference} of order {payment_order_id}; nothing was "
                "refunded and an operator has been alerted to reconcile it",
                {"payment_order_id": payment_order_id, "refund_id": refund_id},
            )
        return refund, order

    async def resend_unanswered(self) -> int:
        """Send again every pending refund whose PSP call got no answer (a network failure, a timeout)
        and has been quiet for ``janitor_first_check_seconds``, and apply the PSP's answer. Under the
        refund's own idempotency key: a call that did reach the PSP replays its answer, so the PSP
        refunds once. Without this a refund the PSP never heard of stays pending for ever (no webhook
        comes for it; chaos seed 13). Returns how many were sent."""
        async with self._uows.transaction() as uow:
            due = await uow.repo.claim_unanswered_refunds(
                self._settings.janitor_first_check_seconds, self._settings.janitor_batch_size
            )
        for refund in due:
            try:
                await self._ask_again(refund)
            except Exception:
                log.exception("janitor could not send a pending refund again", refund_id=refund.refund_id)
        return len(due)

    async def _ask_again(self, refund: RefundRow) -> None:
        async with self._uows.reader() as uow:
            order = await self._order_of_refund(uow, refund)
        if order.psp_reference is None:  # only a captured order is refunded, and capture names it
            raise RuntimeError(
                f"order {order.payment_order_id} of refund {refund.refund_id} has no PaymentIntent"
            )
        # The PSP may have refunded and then failed to answer, storing the error as the key's answer:
        # sending again would replay that error for ever. Its list of the intent's refunds tells.
        try:
            found = await self._psp.find_refund(order.psp_reference, refund.refund_id)
        except PspError as exc:
            log.warning("janitor: PSP unavailable", refund_id=refund.refund_id, error=exc.message)
            return
        if found is None:
            await self._send_refund(refund)
            return
        async with self._uows.transaction() as uow:
            await self.apply_refund_object(uow, replace(found, refund_id=refund.refund_id), "janitor")

    async def _reserve_refund(
        self, uow: UnitOfWork, payment_order_id: str, amount: int, reason: str, refund_id: str
    ) -> RefundRow:
        order = await uow.repo.get_order(payment_order_id, for_update=True)
        if order is None:
            raise NotFound(
                "PAYMENT_ORDER_NOT_FOUND",
                f"no payment order {payment_order_id!r}",
                {"payment_order_id": payment_order_id},
            )
        if OrderState(order.state) not in CAPTURED or order.state == S.REFUNDED.value:
            raise FailedPrecondition(
                "ORDER_NOT_REFUNDABLE", f"order {payment_order_id} is {order.state}", {"state": order.state}
            )
        refundable = order.amount_minor - order.refunded_minor - order.refund_reserved_minor
        amount = amount or refundable
        if step := off_step(amount, order.currency):
            raise InvalidArgument("AMOUNT_PRECISION_EXCEEDED", step, field="amount")
        if amount <= 0 or amount > refundable:
            raise FailedPrecondition(
                "REFUND_EXCEEDS_CAPTURED",
                f"refund of {amount} exceeds the {refundable} still refundable",
                {"refundable_minor": str(refundable)},
            )
        await uow.repo.insert_refund(
            {
                "refund_id": refund_id,
                "payment_order_id": payment_order_id,
                "amount_minor": amount,
                "currency": order.currency,
                "state": "PENDING",
                "reason": reason or None,
            },
        )
        await uow.repo.update_order(
            payment_order_id, refund_reserved_minor=order.refund_reserved_minor + amount
        )
        await uow.repo.add_transition(
            payment_order_id,
            order.state,
            order.state,
            "refund:requested",
            f"{refund_id} for {format_amount(amount, order.currency)} {order.currency}",
        )
        return one_row(await uow.repo.get_refund(refund_id), "refund just stored")

    @staticmethod
    async def _order_of_refund(uow: UnitOfWork, refund: RefundRow, for_update: bool = False) -> OrderRow:
        # A refund references its order: a missing order is a broken invariant, not a caller's error.
        order = await uow.repo.get_order(refund.payment_order_id, for_update=for_update)
        if order is None:
            raise Internal(
                "PAYMENT_ORDER_MISSING",
                f"payment order {refund.payment_order_id!r} of refund {refund.refund_id!r} is missing",
            )
        return order

    async def _send_refund(self, refund: RefundRow) -> None:
        async with self._uows.reader() as uow:
            order = await self._order_of_refund(uow, refund)
        if order.psp_reference is None:  # only a captured order is refunded, and capture names it
            raise RuntimeError(
                f"order {order.payment_order_id} of refund {refund.refund_id} has no PaymentIntent"
            )
        try:
            result = await self._psp.create_refund(
                payment_intent_id=order.psp_reference,
                amount_minor=refund.amount_minor,
                currency=refund.currency,
                reason=refund.reason,
                refund_id=refund.refund_id,
                idempotency_key=refund.refund_id,
            )
        except PspUnavailable as exc:
            log.warning(
                "refund outcome unknown; the PSP will be asked again",
                refund_id=refund.refund_id,
                error=exc.message,
            )
            return
        except PspError as exc:
            reason = exc.code
            if exc.code == "resource_missing":
                reason = PSP_PAYMENT_UNKNOWN
                REFUNDS_OF_UNKNOWN_PAYMENTS.inc()
                log.error(
                    "refund refused: the PSP does not know the order's payment; reconcile it by hand",
                    refund_id=refund.refund_id,
                    payment_order_id=order.payment_order_id,
                    psp_reference=order.psp_reference,
                )
            result = RefundView(id=None, status="failed", refund_id=refund.refund_id, failure_reason=reason)
        async with self._uows.transaction() as uow:
            # The refund is ours whatever its metadata says: it answers our own call.
            await self.apply_refund_object(uow, replace(result, refund_id=refund.refund_id), "psp:refund")

    async def apply_refund_object(self, uow: UnitOfWork, obj: RefundView, cause: str) -> list[str]:
        refund = await uow.repo.get_refund(obj.refund_id, for_update=True) if obj.refund_id else None
        if refund is None and obj.id:
            refund = await uow.repo.refund_by_psp_reference(obj.id)
            refund = await uow.repo.get_refund(refund.refund_id, for_update=True) if refund else None
        if refund is None:
            return []
        if obj.id and refund.psp_reference is None:
            await uow.repo.update_refund(refund.refund_id, psp_reference=obj.id)
        status = obj.status
        if refund.state != "PENDING" or status not in ("succeeded", "failed", "canceled"):
            return []
        order = await self._order_of_refund(uow, refund, for_update=True)
        reserved = order.refund_reserved_minor - refund.amount_minor
        if status == "succeeded":
            await uow.repo.update_refund(refund.refund_id, state="SUCCEEDED")
            refunded = order.refunded_minor + refund.amount_minor
            target = S.REFUNDED if refunded == order.amount_minor else S.PARTIALLY_REFUNDED
            await uow.repo.update_order(
                order.payment_order_id, refunded_minor=refunded, refund_reserved_minor=reserved
            )
            await self._moves.move(
                uow,
                order,
                target,
                cause,
                f"{refund.refund_id} refunded {format_amount(refund.amount_minor, refund.currency)} {refund.currency}",
            )
            if target == OrderState(order.state):  # PARTIALLY_REFUNDED again: still worth a history line
                await uow.repo.add_transition(
                    order.payment_order_id,
                    order.state,
                    order.state,
                    cause,
                    f"{refund.refund_id} refunded {format_amount(refund.amount_minor, refund.currency)} {refund.currency}",
                )
            await self._settlement.refund_succeeded(
                uow,
                one_row(await uow.repo.get_order(order.payment_order_id), "order of a refund"),
                one_row(await uow.repo.get_refund(refund.refund_id), "refund just updated"),
            )
        else:
            await uow.repo.update_refund(
                refund.refund_id, state="FAILED", failure_reason=obj.failure_reason or status
            )
            await uow.repo.update_order(order.payment_order_id, refund_reserved_minor=reserved)
            await uow.repo.add_transition(
                order.payment_order_id,
                order.state,
                order.state,
                cause,
                f"{refund.refund_id} failed: {obj.failure_reason or status}",
            )
        return [order.payment_order_id]
