"""The per-record checks' sources (:class:`recon_svc.record_checks.RecordSources`) over gRPC: the payment
service's records, the ledger's transactions and the wallet's movements, each window read a page at a time
(reads only, as the ``recon`` identity).

What names a record of ours in the books: the payment service posts an order's and a refund's settlement with
``external_ref`` = the order or refund id (description ``pay-in ...`` / ``refund ...``, metadata ``source`` =
``payment_svc``), and a pay-out's transactions with its id and a ``payout*`` or ``debt_netted`` metadata kind;
an undone half is a reversal (ledger) or an ADJUSTMENT movement ``settle:<order|refund>:<id>[:attempt-n]:undo``
(wallet). Everything else in the books (recon's own settlement bookings, a seller's debt written off) names no
record and is not read here.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

import grpc
from google.protobuf.message import Message

from recon_svc.record_checks import BookItem, Kind, OurRecord
from svckit.errors import InvalidArgument, NotFound
from svckit.gen.ledger.v1 import ledger_service_pb2 as lpb
from svckit.gen.ledger.v1 import ledger_service_pb2_grpc as lpb_grpc
from svckit.gen.payments.v1 import payment_service_pb2 as ppb
from svckit.gen.payments.v1 import payment_service_pb2_grpc as ppb_grpc
from svckit.gen.payments.v1 import payout_service_pb2 as popb
from svckit.gen.payments.v1 import payout_service_pb2_grpc as popb_grpc
from svckit.gen.wallet.v1 import wallet_service_pb2 as wpb
from svckit.gen.wallet.v1 import wallet_service_pb2_grpc as wpb_grpc
from svckit.grpc_errors import from_rpc_error, pages

PAGE = 1000
_CAPTURED = (
    ppb.PAYMENT_ORDER_STATE_SUCCESS,
    ppb.PAYMENT_ORDER_STATE_PARTIALLY_REFUNDED,
    ppb.PAYMENT_ORDER_STATE_REFUNDED,
)
_BOOKED_PAYOUTS = (popb.PAYOUT_STATE_PAID, popb.PAYOUT_STATE_IN_TRANSIT)
_PAYOUT_KINDS = frozenset({"payout", "payout_paid", "debt_netted"})
_UNDO = re.compile(r"^settle:(order|refund):(.+?)(?::attempt-\d+)?:undo$")
_WALLET_KINDS: dict[int, Kind] = {
    wpb.REFERENCE_KIND_PAYMENT_ORDER: "order",
    wpb.REFERENCE_KIND_REFUND: "refund",
    wpb.REFERENCE_KIND_PAYOUT: "payout",
}

R = TypeVar("R", bound=Message)


async def _call(rpc: Callable[[], Awaitable[R]]) -> R | None:
    """One read of a record a book names; None when there is none (or the name cannot be one of our ids: a
    book item naming it is unexpected either way), the domain error otherwise."""
    try:
        return await rpc()
    except grpc.aio.AioRpcError as exc:
        error = from_rpc_error(exc)
        if isinstance(error, NotFound | InvalidArgument):
            return None
        raise error from None


def ledger_item(tx: lpb.Transaction) -> BookItem | None:
    """The record of ours a transaction names, as a book item; None for one that names none."""
    meta = tx.metadata
    if meta.get("source") != "payment_svc" or not tx.external_ref:
        return None
    kind: Kind
    step = meta.get("kind", "")
    if step in _PAYOUT_KINDS or step.startswith("payout_"):
        kind = "payout"
    elif step:
        return None  # a seller's debt written off names the seller, not a record
    elif undone := _UNDO.match(meta.get("undoes", "")):
        kind = "order" if undone.group(1) == "order" else "refund"
    elif tx.description.startswith("pay-in "):
        kind = "order"
    elif tx.description.startswith("refund "):
        kind = "refund"
    else:
        return None
    debits = [e for e in tx.entries if e.direction == lpb.DIRECTION_DEBIT]
    return BookItem(
        kind=kind,
        ref=tx.external_ref,
        item_id=str(tx.id),
        currency=debits[0].currency if debits else "",
        amount_minor=sum(e.amount_minor for e in debits),
        cancels=str(tx.reverses_id) if tx.reverses_id else "",
    )


def wallet_item(m: wpb.Movement) -> BookItem | None:
    """The record of ours a movement names (an undo adjustment cancels one of its record's), or None."""
    kind = _WALLET_KINDS.get(m.reference.kind)
    ref, cancels = m.reference.id, ""
    if kind is None:
        undone = _UNDO.match(m.reference.id) if m.reference.kind == wpb.REFERENCE_KIND_ADJUSTMENT else None
        if undone is None:
            return None
        kind = "order" if undone.group(1) == "order" else "refund"
        ref, cancels = undone.group(2), "*"
    return BookItem(kind, ref, m.movement_id, m.amount.currency, m.amount.amount_minor, cancels, m.seller_id)


def _net(items: list[BookItem], kind: Kind) -> int:
    mine = [i for i in items if i.kind == kind]
    reversed_ids = {i.cancels for i in mine if i.cancels not in ("", "*")}
    kept = sum(1 for i in mine if not i.cancels and i.item_id not in reversed_ids)
    return kept - sum(1 for i in mine if i.cancels == "*")


def _order_record(o: ppb.PaymentOrder) -> OurRecord:
    return OurRecord(
        kind="order",
        ref=o.payment_order_id,
        seller=o.seller_account,
        currency=o.currency,
        amount_minor=o.amount_minor,
        wallet_expected=o.amount_minor > o.commission_minor,
        wallet_amount_minor=o.amount_minor - o.commission_minor,
        detail=f"wallet_updated={str(o.wallet_updated).lower()}, ledger_updated={str(o.ledger_updated).lower()}",
    )


def _refund_record(r: ppb.Refund) -> OurRecord:
    return OurRecord("refund", r.refund_id, "", r.currency, r.amount_minor, parent=r.payment_order_id)


def _payout_record(p: popb.Payout) -> OurRecord:
    return OurRecord(
        kind="payout",
        ref=p.payout_id,
        seller=p.seller_account,
        currency=p.amount.currency,
        amount_minor=p.amount.amount_minor,
        detail=popb.PayoutState.Name(p.state).removeprefix("PAYOUT_STATE_"),
        required=p.state in _BOOKED_PAYOUTS,
    )


class GrpcRecordSources:
    def __init__(
        self,
        payments: ppb_grpc.PaymentServiceStub,
        payouts: popb_grpc.PayoutServiceStub,
        ledger: lpb_grpc.LedgerServiceStub,
        wallets: wpb_grpc.WalletServiceStub,
        deadline_seconds: float,
    ) -> None:
        self._payments = payments
        self._payouts = payouts
        self._ledger = ledger
        self._wallets = wallets
        self._deadline = deadline_seconds

    def _pages(self, rpc: Callable[..., Awaitable[R]], request: Message) -> AsyncIterator[R]:
        return pages(rpc, request, self._deadline)

    async def records(self, window: tuple[dt.datetime, dt.datetime]) -> AsyncIterator[OurRecord]:
        """The window's captured orders, succeeded refunds and pay-outs (all: a pay-out not paid yet still
        explains its reservation), by creation time."""
        orders = ppb.ListPaymentOrdersRequest(states=_CAPTURED, page_size=PAGE)
        refunds = ppb.ListRefundsRequest(states=[ppb.REFUND_STATE_SUCCEEDED], page_size=PAGE)
        payouts = popb.ListPayoutsRequest(page_size=PAGE)
        for request in (orders, refunds, payouts):
            request.create_time_from.FromDatetime(window[0])
            request.create_time_before.FromDatetime(window[1])
        async for order_page in self._pages(self._payments.ListPaymentOrders, orders):
            for o in order_page.payment_orders:
                yield _order_record(o)
        async for refund_page in self._pages(self._payments.ListRefunds, refunds):
            for r in refund_page.refunds:
                yield _refund_record(r)
        async for payout_page in self._pages(self._payouts.ListPayouts, payouts):
            for p in payout_page.payouts:
                yield _payout_record(p)

    async def ledger_items(self, window: tuple[dt.datetime, dt.datetime]) -> AsyncIterator[BookItem]:
        request = lpb.ListTransactionsRequest(page_size=PAGE)
        request.post_time_from.FromDatetime(window[0])
        request.post_time_before.FromDatetime(window[1])
        async for page in self._pages(self._ledger.ListTransactions, request):
            for tx in page.transactions:
                if (item := ledger_item(tx)) is not None:
                    yield item

    async def wallet_items(self, window: tuple[dt.datetime, dt.datetime]) -> AsyncIterator[BookItem]:
        request = wpb.ListMovementsRequest(page_size=PAGE)
        request.create_time_from.FromDatetime(window[0])
        request.create_time_before.FromDatetime(window[1])
        async for page in self._pages(self._wallets.ListMovements, request):
            for m in page.movements:
                if (item := wallet_item(m)) is not None:
                    yield item

    async def ledger_count(self, record: OurRecord) -> int:
        items = [i for tx in await self._transactions(record.ref) if (i := ledger_item(tx)) is not None]
        return _net(items, record.kind)

    async def wallet_count(self, record: OurRecord) -> int:
        seller = record.seller
        if record.kind == "refund":
            order = await self._order(record.parent)
            if order is None:
                return 0
            if order.amount_minor <= order.commission_minor:
                return 1  # the seller's share was nothing: no movement is due
            seller = order.seller_account
        request = wpb.ListMovementsRequest(
            seller_id=seller, currency=record.currency, reference_id=record.ref, page_size=PAGE
        )
        items: list[BookItem] = []
        try:
            async for page in self._pages(self._wallets.ListMovements, request):
                items.extend(i for m in page.movements if (i := wallet_item(m)) is not None)
        except NotFound:
            return 0  # no wallet at all
        found = _net(items, record.kind)
        if not found and record.kind == "refund":
            # A refund the wallet could not cover at all (the seller was paid out) moves nothing: its posting
            # books the whole seller's share as the seller's debt.
            posted = [
                tx for tx in await self._transactions(record.ref) if tx.metadata.get("seller_debt_minor")
            ]
            return 1 if posted else 0
        return found

    async def _transactions(self, ref: str) -> list[lpb.Transaction]:
        found: list[lpb.Transaction] = []
        request = lpb.ListTransactionsRequest(external_ref=ref, page_size=100)
        async for page in self._pages(self._ledger.ListTransactions, request):
            found.extend(page.transactions)
        return found

    async def _order(self, order_id: str) -> ppb.PaymentOrder | None:
        request = ppb.GetPaymentOrderRequest(payment_order_id=order_id)
        reply = await _call(lambda: self._payments.GetPaymentOrder(request, timeout=self._deadline))
        return reply.payment_order if reply is not None else None

    async def record(self, kind: Kind, ref: str) -> OurRecord | None:
        if kind == "order":
            order = await self._order(ref)
            return _order_record(order) if order is not None and order.state in _CAPTURED else None
        if kind == "refund":
            request = ppb.ListRefundsRequest(refund_id=ref, states=[ppb.REFUND_STATE_SUCCEEDED])
            reply = await _call(lambda: self._payments.ListRefunds(request, timeout=self._deadline))
            return _refund_record(reply.refunds[0]) if reply is not None and reply.refunds else None
        payout = await _call(
            lambda: self._payouts.GetPayout(popb.GetPayoutRequest(payout_id=ref), timeout=self._deadline)
        )
        return _payout_record(payout.payout) if payout is not None else None
