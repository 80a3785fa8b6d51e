"""Our side of the comparison, read and written through the owning services' gRPC APIs (never their databases).

- :class:`GrpcPaymentRecords` finds the checkout a charge row belongs to (one PaymentIntent per checkout, in
  both modes): the ``checkout_id`` metadata we sent with the PaymentIntent (then ListPaymentOrders of that
  checkout), else its ``payment_order_ids`` (or an older single ``payment_order_id``), else the PaymentIntent
  id itself (GetCheckoutByPaymentIntent: the orders whose ``psp_reference`` it is). A refund is found among the
  refunds of that checkout's orders (ListRefunds) by our ``refund_id`` metadata or its ``re_`` id. A transfer
  is found as the pay-out its ``payout_id`` metadata names (PayoutService.GetPayout).
- :class:`GrpcSettlementBooker` posts a chunk's settlements in the ledger (PostTransactions, one transaction per
  currency and account the gross goes to), each keyed by its booking id so a retried or resumed run posts it once.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

import grpc

from ledger_svc import naming
from recon_svc.settlement.classify import (
    Against,
    Booking,
    OrderState,
    OurDispute,
    OurOrder,
    OurPayout,
    OurRefund,
)
from recon_svc.settlement.parse import SettlementRow
from svckit.errors import NotFound
from svckit.gen.ledger.v1 import ledger_service_pb2 as lpb
from svckit.gen.ledger.v1 import ledger_service_pb2_grpc as lpb_grpc
from svckit.gen.payments.v1 import payment_service_pb2 as ppb
from svckit.gen.payments.v1 import payment_service_pb2_grpc as ppb_grpc
from svckit.gen.payments.v1 import payout_service_pb2 as popb
from svckit.gen.payments.v1 import payout_service_pb2_grpc as popb_grpc
from svckit.grpc_errors import from_rpc_error, pages

PSP = "stripe"
BATCH_CHECKOUTS = 1000
"""BatchGetCheckoutOrders' limit per call."""


class PaymentRecords(Protocol):
    async def checkout_for(self, row: SettlementRow) -> list[OurOrder] | None: ...

    async def checkouts(self, checkout_ids: Sequence[str]) -> dict[str, list[OurOrder]]:
        """The orders of many checkouts (a chunk's), by checkout id; an unknown checkout is absent."""
        ...

    async def refund_for(self, row: SettlementRow) -> OurRefund | None: ...

    async def disputes_for(self, payment_intent_id: str) -> list[OurDispute] | None:
        """The disputes the payment service recorded on the checkout of that PaymentIntent (a dispute row's
        charge); None when it knows no checkout of it."""
        ...

    async def payout_for(self, payout_id: str) -> OurPayout | None: ...

    def captured_orders(self, start: dt.datetime, end: dt.datetime) -> AsyncIterator[OurOrder]: ...

    def payouts_created(self, start: dt.datetime, end: dt.datetime) -> AsyncIterator[OurPayout]: ...

    def refunds_succeeded(self, start: dt.datetime, end: dt.datetime) -> AsyncIterator[OurRefund]:
        """Our refunds created in [start, end) that succeeded."""
        ...


class OrderFixer(Protocol):
    async def recheck(self, payment_order_id: str) -> OurOrder: ...

    async def redrive(self, payment_order_id: str) -> tuple[OurOrder, bool]:
        """The payment service emits the order's settlement again (True), or it was settled (False)."""
        ...


@dataclass(frozen=True, slots=True)
class ChunkBooking:
    """What one chunk of rows settled in one currency against one account: one ledger transaction, keyed by
    ``booking_id``."""

    booking_id: str
    currency: str
    gross_minor: int
    fee_minor: int
    row_count: int
    against: Against = Against.PSP_RECEIVABLE
    """Where the chunk's gross goes (recon3's per-row ``Booking.against``): one booking per currency and account."""


class SettlementBooker(Protocol):
    async def post(self, bookings: Sequence[ChunkBooking]) -> list[int]:
        """Post each booking (idempotently by its id); the ledger transaction ids, in order."""
        ...


_STATES = {ppb.PaymentOrderState.Value(f"PAYMENT_ORDER_STATE_{state.value}"): state for state in OrderState}
"""Wire number → state, built once: a chunk converts thousands of orders."""


def _state(value: int) -> OrderState:
    return _STATES[value]


def _order_of(o: ppb.PaymentOrder) -> OurOrder:
    created = o.create_time
    return OurOrder(
        payment_order_id=o.payment_order_id,
        psp_reference=o.psp_reference,
        amount_minor=o.amount_minor,
        currency=o.currency,
        state=_STATES[o.state],
        # fromtimestamp plus the micros: several times cheaper than Timestamp.ToDatetime, and the same value.
        created_at=dt.datetime.fromtimestamp(created.seconds, dt.UTC).replace(
            microsecond=created.nanos // 1000
        ),
        wallet_updated=o.wallet_updated,
        ledger_updated=o.ledger_updated,
        checkout_id=o.checkout_id,
    )


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _orders_of_columns(reply: ppb.BatchGetCheckoutOrderColumnsResponse) -> list[OurOrder]:
    """The orders of a column-wise answer; each column is converted to a Python list once (one C call),
    then zipped (strictly: columns of different lengths are refused), so no protobuf object is touched per
    order."""
    columns = (
        list(reply.payment_order_ids),
        list(reply.psp_references),
        list(reply.amounts_minor),
        list(reply.currencies),
        [_STATES[s] for s in reply.states],
        [_EPOCH + dt.timedelta(microseconds=m) for m in reply.create_times_unix_micros],
        list(reply.wallet_updated),
        list(reply.ledger_updated),
        list(reply.checkout_ids),
    )
    return [OurOrder(*values) for values in zip(*columns, strict=True)]


def _payout_of(p: popb.Payout) -> OurPayout:
    return OurPayout(
        payout_id=p.payout_id,
        state=popb.PayoutState.Name(p.state).removeprefix("PAYOUT_STATE_"),
        amount_minor=p.amount.amount_minor,
        currency=p.amount.currency,
        psp_transfer_id=p.psp_transfer_id,
        created_at=p.create_time.ToDatetime(tzinfo=dt.UTC),
    )


def _refund_of(r: ppb.Refund) -> OurRefund:
    return OurRefund(
        refund_id=r.refund_id,
        payment_order_id=r.payment_order_id,
        psp_reference=r.psp_reference,
        amount_minor=r.amount_minor,
        currency=r.currency,
        succeeded=r.state == ppb.REFUND_STATE_SUCCEEDED,
        created_at=r.create_time.ToDatetime(tzinfo=dt.UTC),
    )


class GrpcPaymentRecords:
    def __init__(
        self,
        stub: ppb_grpc.PaymentServiceStub,
        deadline_seconds: float,
        payouts: popb_grpc.PayoutServiceStub,
    ) -> None:
        self._stub = stub
        self._deadline = deadline_seconds
        self._payouts = payouts

    async def payout_for(self, payout_id: str) -> OurPayout | None:
        """Our pay-out by id; None when there is none."""
        try:
            reply = await self._payouts.GetPayout(
                popb.GetPayoutRequest(payout_id=payout_id), timeout=self._deadline
            )
        except grpc.aio.AioRpcError as exc:
            error = from_rpc_error(exc)
            if isinstance(error, NotFound):
                return None
            raise error from None
        return _payout_of(reply.payout)

    async def payouts_created(self, start: dt.datetime, end: dt.datetime) -> AsyncIterator[OurPayout]:
        """Our pay-outs created in [start, end), a page at a time."""
        request = popb.ListPayoutsRequest(page_size=1000)
        request.create_time_from.FromDatetime(start)
        request.create_time_before.FromDatetime(end)
        async for page in pages(self._payouts.ListPayouts, request, self._deadline):
            for p in page.payouts:
                yield _payout_of(p)

    async def refunds_succeeded(self, start: dt.datetime, end: dt.datetime) -> AsyncIterator[OurRefund]:
        """Every order's refunds created in [start, end) that succeeded, a page at a time."""
        request = ppb.ListRefundsRequest(states=[ppb.REFUND_STATE_SUCCEEDED], page_size=1000)
        request.create_time_from.FromDatetime(start)
        request.create_time_before.FromDatetime(end)
        async for page in pages(self._stub.ListRefunds, request, self._deadline):
            for r in page.refunds:
                yield _refund_of(r)

    async def _order(self, payment_order_id: str) -> OurOrder | None:
        try:
            reply = await self._stub.GetPaymentOrder(
                ppb.GetPaymentOrderRequest(payment_order_id=payment_order_id), timeout=self._deadline
            )
        except grpc.aio.AioRpcError as exc:
            error = from_rpc_error(exc)
            if isinstance(error, NotFound):
                return None
            raise error from None
        return _order_of(reply.payment_order)

    async def recheck(self, payment_order_id: str) -> OurOrder:
        """The payment service asks the PSP and applies the answer through its state machine."""
        try:
            reply = await self._stub.RecheckPaymentOrder(
                ppb.RecheckPaymentOrderRequest(payment_order_id=payment_order_id), timeout=self._deadline
            )
        except grpc.aio.AioRpcError as exc:
            raise from_rpc_error(exc) from None
        return _order_of(reply.payment_order)

    async def redrive(self, payment_order_id: str) -> tuple[OurOrder, bool]:
        """RedriveSettlement: the order's wallet credit and ledger posting, through the normal idempotent path."""
        try:
            reply = await self._stub.RedriveSettlement(
                ppb.RedriveSettlementRequest(payment_order_id=payment_order_id), timeout=self._deadline
            )
        except grpc.aio.AioRpcError as exc:
            raise from_rpc_error(exc) from None
        return _order_of(reply.payment_order), reply.redriven

    async def captured_orders(self, start: dt.datetime, end: dt.datetime) -> AsyncIterator[OurOrder]:
        """Orders created in [start, end) that were captured (success, partly or fully refunded since)."""
        request = ppb.ListPaymentOrdersRequest(
            states=[
                ppb.PAYMENT_ORDER_STATE_SUCCESS,
                ppb.PAYMENT_ORDER_STATE_PARTIALLY_REFUNDED,
                ppb.PAYMENT_ORDER_STATE_REFUNDED,
            ],
            page_size=1000,
        )
        request.create_time_from.FromDatetime(start)
        request.create_time_before.FromDatetime(end)
        async for page in pages(self._stub.ListPaymentOrders, request, self._deadline):
            for o in page.payment_orders:
                yield _order_of(o)

    async def _checkout_orders(self, checkout_id: str) -> list[OurOrder]:
        request = ppb.ListPaymentOrdersRequest(checkout_id=checkout_id, page_size=1000)
        orders = [
            _order_of(o)
            async for page in pages(self._stub.ListPaymentOrders, request, self._deadline)
            for o in page.payment_orders
        ]
        # Oldest first, so mismatches and auto-fixes of a checkout come in a stable order.
        return sorted(orders, key=lambda o: o.payment_order_id)

    async def _checkout_by_payment_intent(
        self, payment_intent_id: str
    ) -> ppb.GetCheckoutByPaymentIntentResponse | None:
        """GetCheckoutByPaymentIntent's answer; None when the payment service knows no such intent."""
        try:
            return await self._stub.GetCheckoutByPaymentIntent(
                ppb.GetCheckoutByPaymentIntentRequest(payment_intent_id=payment_intent_id),
                timeout=self._deadline,
            )
        except grpc.aio.AioRpcError as exc:
            error = from_rpc_error(exc)
            if isinstance(error, NotFound):
                return None
            raise error from None

    async def _by_payment_intent(self, payment_intent_id: str) -> list[OurOrder]:
        reply = await self._checkout_by_payment_intent(payment_intent_id)
        if reply is None:
            return []
        return sorted(
            (_order_of(o) for o in reply.payment_event.payment_orders), key=lambda o: o.payment_order_id
        )

    async def disputes_for(self, payment_intent_id: str) -> list[OurDispute] | None:
        """GetCheckoutByPaymentIntent's ``disputes`` (recorded from the PSP's ``charge.dispute.*`` events)."""
        reply = await self._checkout_by_payment_intent(payment_intent_id)
        if reply is None:
            return None
        return [
            OurDispute(d.dispute_id, d.amount_minor, d.currency, d.status)
            for d in reply.payment_event.disputes
        ]

    async def checkout_for(self, row: SettlementRow) -> list[OurOrder] | None:
        """The orders of the checkout whose PaymentIntent the row charged; None when it is not ours."""
        checkout_id = row.metadata.get("payment.checkout_id", "")
        if not checkout_id:
            listed = row.metadata.get("payment.payment_order_ids") or row.metadata.get(
                "payment.payment_order_id"
            )
            first = (listed or "").split(",")[0].strip()
            order = await self._order(first) if first else None
            checkout_id = order.checkout_id if order is not None else ""
        if checkout_id:
            orders = await self._checkout_orders(checkout_id)
        elif row.payment_intent_id:
            orders = await self._by_payment_intent(row.payment_intent_id)
        else:
            return None
        if not orders:
            return None
        if row.payment_intent_id and any(
            o.psp_reference and o.psp_reference != row.payment_intent_id for o in orders
        ):
            return None  # our metadata on someone else's PaymentIntent is not our charge
        return orders

    async def checkouts(self, checkout_ids: Sequence[str]) -> dict[str, list[OurOrder]]:
        """BatchGetCheckoutOrderColumns (only the fields compared, as columns), up to its 1000 ids per call, the
        calls of a chunk concurrently."""
        ids = sorted(set(checkout_ids))

        async def page(part: list[str]) -> list[OurOrder]:
            try:
                reply = await self._stub.BatchGetCheckoutOrderColumns(
                    ppb.BatchGetCheckoutOrderColumnsRequest(checkout_ids=part), timeout=self._deadline
                )
            except grpc.aio.AioRpcError as exc:
                raise from_rpc_error(exc) from None
            return _orders_of_columns(reply)

        found: dict[str, list[OurOrder]] = {}
        parts = [ids[i : i + BATCH_CHECKOUTS] for i in range(0, len(ids), BATCH_CHECKOUTS)]
        for orders in await asyncio.gather(*(page(p) for p in parts)):
            for order in orders:  # by checkout, then order id
                found.setdefault(order.checkout_id, []).append(order)
        return found

    async def refund_for(self, row: SettlementRow) -> OurRefund | None:
        refund_id = row.metadata.get("refund.refund_id", "")
        for order in await self.checkout_for(row) or []:
            found = await self._refund_of(order.payment_order_id, refund_id, row.source_id)
            if found is not None:
                return found
        return None

    async def _refund_of(self, order_id: str, refund_id: str, psp_refund_id: str) -> OurRefund | None:
        token = ""
        while True:
            try:
                page = await self._stub.ListRefunds(
                    ppb.ListRefundsRequest(payment_order_id=order_id, page_size=1000, page_token=token),
                    timeout=self._deadline,
                )
            except grpc.aio.AioRpcError as exc:
                error = from_rpc_error(exc)
                if isinstance(error, NotFound):
                    return None
                raise error from None
            for r in page.refunds:
                if (refund_id and r.refund_id == refund_id) or (
                    r.psp_reference and r.psp_reference == psp_refund_id
                ):
                    return _refund_of(r)
            if not page.next_page_token:
                return None
            token = page.next_page_token


def _against(booking: Booking | ChunkBooking) -> str:
    cur = booking.currency
    match booking.against:
        case Against.PSP_RECEIVABLE:
            return naming.psp_receivable(PSP, cur)
        case Against.DISPUTE_LOSSES:
            return naming.expense_dispute_losses(cur)
        case Against.PSP_FEES:
            return naming.expense_psp_fees(cur)
        case Against.PSP_ADJUSTMENTS:
            return naming.expense_psp_adjustments(cur)


def settlement_entries(booking: Booking | ChunkBooking) -> list[lpb.Entry]:
    """DESIGN.md: Dr bank net / Dr PSP fees fee / Cr psp_receivable gross; a refund (negative gross) mirrors it.

    Disputes, standalone fees and adjustments have the same shape with their gross set against
    ``expense:dispute_losses``, ``expense:psp_fees`` or ``expense:psp_adjustments`` (a dispute's negative gross
    debits the losses, the bank gives the gross and the dispute fee).
    """
    cur = booking.currency
    gross, fee = booking.gross_minor, booking.fee_minor
    net = gross - fee
    debit, credit = lpb.DIRECTION_DEBIT, lpb.DIRECTION_CREDIT
    lines: list[tuple[str, lpb.Direction, int]] = [  # (account, direction when positive, amount)
        (naming.bank_operating(cur), debit, net),
        (naming.expense_psp_fees(cur), debit, fee),
        (_against(booking), credit, gross),
    ]
    entries = []
    for account, direction, amount in lines:
        if amount == 0:
            continue
        flipped = credit if direction == debit else debit
        entries.append(
            lpb.Entry(
                account=account,
                direction=direction if amount > 0 else flipped,
                amount_minor=abs(amount),
                currency=cur,
            )
        )
    return entries


class GrpcSettlementBooker:
    def __init__(self, stub: lpb_grpc.LedgerServiceStub, deadline_seconds: float) -> None:
        self._stub = stub
        self._deadline = deadline_seconds

    async def post(self, bookings: Sequence[ChunkBooking]) -> list[int]:
        """One PostTransactions call for a chunk's bookings (one per currency and account its gross goes to), each
        item keyed by its booking id, so a retry after a crash replays what the ledger already posted."""
        items = []
        for b in bookings:
            entries = settlement_entries(b)
            if not entries:
                raise ValueError(f"booking {b.booking_id} moves no money")
            items.append(
                lpb.PostTransactionsItem(
                    idempotency_key=f"recon-settlement-{b.booking_id}",
                    transaction=lpb.PostTransactionRequest(
                        entries=entries,
                        description=f"PSP settlement of {b.row_count} balance transaction(s)",
                        external_ref=b.booking_id,
                        metadata={
                            "kind": "psp_settlement",
                            "booking_id": b.booking_id,
                            "rows": str(b.row_count),
                            "against": b.against.value,
                        },
                    ),
                )
            )
        try:
            reply = await self._stub.PostTransactions(
                lpb.PostTransactionsRequest(items=items),
                # The call's key names its bookings: a retry of the same set replays the answer.
                metadata=[
                    ("idempotency-key", "recon-settlement-chunk-" + _digest(b.booking_id for b in bookings))
                ],
                timeout=self._deadline,
            )
        except grpc.aio.AioRpcError as exc:
            raise from_rpc_error(exc) from None
        ids = []
        for b, result in zip(bookings, reply.results, strict=True):
            if result.HasField("error"):
                raise BookingRefused(b.booking_id, result.error.reason, result.error.message)
            ids.append(result.transaction.id)
        return ids


def _digest(ids: Iterable[str]) -> str:
    return hashlib.sha256("\n".join(sorted(ids)).encode()).hexdigest()[:40]


class BookingRefused(Exception):
    """The ledger refused a chunk's booking; it stays pending in recon and the next run posts it again."""

    def __init__(self, booking_id: str, reason: str, message: str) -> None:
        super().__init__(f"ledger refused settlement booking {booking_id}: {reason}: {message}")
        self.reason = reason
