"""Settlement of pay-in money into the seller's wallet and the ledger, through the event backbone.

``OutboxSettlement`` writes an event in the same transaction as the order's SUCCESS (or a refund's
success). ``SettlementHandler`` consumes them a batch at a time: one wallet ApplyBatch and one ledger
PostTransactions call per batch, each item idempotent on a key derived from the order or refund id,
then it flags the orders — in the consumer's transaction, which also records the events as
processed. A failure is retried by the backbone (transient) or dead-lettered for an operator
(terminal).

Books, for an order of amount A with commission C (DESIGN.md, "Money in the books"):
    Dr asset:psp_receivable:stripe A / Cr liability:seller_payable:<seller> A-C / Cr revenue:commission C
and for a refund R of it, with c the commission it gives back (proportional, so a full refund
returns exactly C): the mirror image, and the wallet is debited R-c.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import grpc
from sqlalchemy.ext.asyncio import AsyncConnection

from payment_svc import repository
from svckit.context import IDEMPOTENCY_KEY_METADATA
from svckit.errors import Aborted, DomainError, Internal, Unavailable
from svckit.events import Event, TerminalError, TransientError, outbox
from svckit.gen.common.v1 import money_pb2
from svckit.gen.ledger.v1 import ledger_service_pb2 as lpb
from svckit.gen.ledger.v1 import ledger_service_pb2_grpc as lpb_grpc
from svckit.gen.wallet.v1 import wallet_service_pb2 as wpb
from svckit.gen.wallet.v1 import wallet_service_pb2_grpc as wpb_grpc
from svckit.grpc_errors import from_rpc_error
from svckit.logging import get_logger

log = get_logger(__name__)

ORDER_SUCCEEDED = "payment.order.succeeded"
REFUND_SUCCEEDED = "payment.refund.succeeded"

PSP_RECEIVABLE = "asset:psp_receivable:stripe"
COMMISSION_REVENUE = "revenue:commission"


def seller_payable(seller: str) -> str:
    return f"liability:seller_payable:{seller}"


def commission_share(commission_minor: int, amount_minor: int, refunded_minor: int) -> int:
    """Commission given back once ``refunded_minor`` of the order is refunded (half-up; all of it at 100 %)."""
    return (commission_minor * refunded_minor + amount_minor // 2) // amount_minor


def _order_payload(order: Any, commission_minor: int) -> dict[str, Any]:
    # Only what never changes after creation, plus the commission fixed at SUCCESS.
    return {
        "payment_order_id": order.payment_order_id,
        "checkout_id": order.checkout_id,
        "seller_account": order.seller_account,
        "amount_minor": order.amount_minor,
        "commission_minor": commission_minor,
        "currency": order.currency,
    }


class OutboxSettlement:
    """The payment service's SettlementSink: events into the outbox, inside the caller's transaction."""

    def __init__(self, stream: str) -> None:
        self.stream = stream

    def order_succeeded_event(self, order: Any, commission_minor: int) -> outbox.EmbeddedEvent:
        return outbox.embed(
            stream=self.stream,
            aggregate_id=order.payment_order_id,
            type=ORDER_SUCCEEDED,
            payload=_order_payload(order, commission_minor),
        )

    async def order_succeeded(self, conn: AsyncConnection, order: Any, commission_minor: int) -> None:
        await outbox.add(
            conn,
            stream=self.stream,
            aggregate_id=order.payment_order_id,
            type=ORDER_SUCCEEDED,
            payload=_order_payload(order, commission_minor),
        )

    async def refund_succeeded(self, conn: AsyncConnection, order: Any, refund: Any) -> None:
        before = order.refunded_minor - refund.amount_minor
        given_back = commission_share(order.commission_minor, order.amount_minor, order.refunded_minor) - (
            commission_share(order.commission_minor, order.amount_minor, before)
        )
        await outbox.add(
            conn,
            stream=self.stream,
            aggregate_id=order.payment_order_id,
            type=REFUND_SUCCEEDED,
            payload={
                "refund_id": refund.refund_id,
                "payment_order_id": order.payment_order_id,
                "seller_account": order.seller_account,
                "amount_minor": refund.amount_minor,
                "commission_minor": given_back,
                "currency": refund.currency,
            },
        )


def _entry(account: str, debit: bool, amount: int, currency: str) -> lpb.Entry:
    direction = lpb.DIRECTION_DEBIT if debit else lpb.DIRECTION_CREDIT
    return lpb.Entry(account=account, direction=direction, amount_minor=amount, currency=currency)


def order_entries(seller: str, amount: int, commission: int, currency: str) -> list[lpb.Entry]:
    entries = [_entry(PSP_RECEIVABLE, True, amount, currency)]
    if amount - commission:
        entries.append(_entry(seller_payable(seller), False, amount - commission, currency))
    if commission:
        entries.append(_entry(COMMISSION_REVENUE, False, commission, currency))
    return entries


def refund_entries(seller: str, amount: int, commission: int, currency: str) -> list[lpb.Entry]:
    entries = [_entry(PSP_RECEIVABLE, False, amount, currency)]
    if amount - commission:
        entries.append(_entry(seller_payable(seller), True, amount - commission, currency))
    if commission:
        entries.append(_entry(COMMISSION_REVENUE, True, commission, currency))
    return entries


@dataclass(frozen=True)
class _Movement:
    """What one settlement event does to the wallet and the ledger."""

    key: str
    seller: str
    net: int
    currency: str
    reference: wpb.Reference
    ledger: lpb.PostTransactionRequest
    debit: bool
    flags_order: str | None
    """The order to flag wallet_updated/ledger_updated once settled (pay-ins only)."""


def _movement(event: Event) -> _Movement | None:
    p = event.payload
    if event.type == ORDER_SUCCEEDED:
        key, ref, debit = f"settle:order:{p['payment_order_id']}", p["payment_order_id"], False
        reference = wpb.Reference(kind=wpb.REFERENCE_KIND_PAYMENT_ORDER, id=ref)
        entries = order_entries(p["seller_account"], p["amount_minor"], p["commission_minor"], p["currency"])
        description = f"pay-in {ref} of checkout {p['checkout_id']}"
    elif event.type == REFUND_SUCCEEDED:
        key, ref, debit = f"settle:refund:{p['refund_id']}", p["refund_id"], True
        reference = wpb.Reference(kind=wpb.REFERENCE_KIND_REFUND, id=ref)
        entries = refund_entries(p["seller_account"], p["amount_minor"], p["commission_minor"], p["currency"])
        description = f"refund {ref} of {p['payment_order_id']}"
    else:
        return None  # the stream carries other events too, for other consumer groups
    return _Movement(
        key=key,
        seller=p["seller_account"],
        net=p["amount_minor"] - p["commission_minor"],
        currency=p["currency"],
        reference=reference,
        ledger=lpb.PostTransactionRequest(
            entries=entries,
            description=description,
            external_ref=ref,
            metadata={"source": "payment_svc", "reference": ref},
        ),
        debit=debit,
        flags_order=p["payment_order_id"] if event.type == ORDER_SUCCEEDED else None,
    )


class SettlementHandler:
    """Consumer batch handler (group ``settlement``): wallet and ledger for a batch of settlement events.

    Every remote effect carries the event's own key (``settle:order:<id>``, ``settle:refund:<id>``),
    the same whether it travels alone or in a batch, so a batch that fails half-way and is then
    applied event by event replays what was done and does the rest."""

    def __init__(
        self, wallet: wpb_grpc.WalletServiceStub, ledger: lpb_grpc.LedgerServiceStub, deadline_seconds: float
    ) -> None:
        self._wallet = wallet
        self._ledger = ledger
        self._deadline = deadline_seconds

    async def __call__(self, conn: AsyncConnection, events: list[Event]) -> None:
        movements = [m for m in map(_movement, events) if m is not None]
        if not movements:
            return
        try:
            await self._move_wallets([m for m in movements if m.net])
            await self._post_ledger(movements)
        except grpc.aio.AioRpcError as exc:
            raise _classified(from_rpc_error(exc)) from None
        orders = [m.flags_order for m in movements if m.flags_order]
        if orders:
            await repository.mark_settled(conn, orders)

    async def _move_wallets(self, movements: list[_Movement]) -> None:
        if not movements:
            return
        if len(movements) == 1:  # alone: the refusal is the call's own, with its exact status
            (m,) = movements
            metadata = ((IDEMPOTENCY_KEY_METADATA, m.key),)
            if m.debit:
                await self._wallet.Debit(_debit(m), metadata=metadata, timeout=self._deadline)
            else:
                await self._wallet.Credit(_credit(m), metadata=metadata, timeout=self._deadline)
            return
        reply = await self._wallet.ApplyBatch(
            wpb.ApplyBatchRequest(
                items=[
                    wpb.ApplyBatchItem(idempotency_key=m.key, debit=_debit(m))
                    if m.debit
                    else wpb.ApplyBatchItem(idempotency_key=m.key, credit=_credit(m))
                    for m in movements
                ]
            ),
            timeout=self._deadline,
        )
        refused = [(m, r.error) for m, r in zip(movements, reply.results, strict=True) if r.HasField("error")]
        if refused:
            m, err = refused[0]
            raise TerminalError(f"wallet refused {m.key}: {err.reason}: {err.message}")

    async def _post_ledger(self, movements: list[_Movement]) -> None:
        if len(movements) == 1:  # alone (also the one-by-one fallback): the error is the call's own
            (m,) = movements
            metadata = ((IDEMPOTENCY_KEY_METADATA, m.key),)
            await self._ledger.PostTransaction(m.ledger, metadata=metadata, timeout=self._deadline)
            return
        # The call's own key names its items, so a redelivered batch replays the stored answer.
        batch_key = (
            "settle:batch:" + hashlib.sha256("\x00".join(m.key for m in movements).encode()).hexdigest()
        )
        reply = await self._ledger.PostTransactions(
            lpb.PostTransactionsRequest(
                items=[
                    lpb.PostTransactionsItem(idempotency_key=m.key, transaction=m.ledger) for m in movements
                ]
            ),
            metadata=((IDEMPOTENCY_KEY_METADATA, batch_key),),
            timeout=self._deadline,
        )
        refused = [(m, r.error) for m, r in zip(movements, reply.results, strict=True) if r.HasField("error")]
        if refused:
            # The consumer rolls the batch back and applies each event alone, which names the culprit
            # and retries or dead-letters only it; the others replay what this call already posted.
            m, err = refused[0]
            raise TerminalError(f"ledger refused {m.key}: {err.reason}: {err.message}")


def _credit(m: _Movement) -> wpb.CreditRequest:
    money = money_pb2.Money(amount_minor=m.net, currency=m.currency)
    return wpb.CreditRequest(seller_id=m.seller, amount=money, reference=m.reference)


def _debit(m: _Movement) -> wpb.DebitRequest:
    money = money_pb2.Money(amount_minor=m.net, currency=m.currency)
    return wpb.DebitRequest(seller_id=m.seller, amount=money, reference=m.reference)


def _classified(err: DomainError) -> Exception:
    # Unavailable, a key still in use, and unexpected server errors may pass; anything the other
    # service refused on its merits (bad request, insufficient funds) needs a person.
    if isinstance(err, Unavailable | Aborted | Internal):
        return TransientError(f"{err.reason}: {err.message}")
    return TerminalError(f"{err.reason}: {err.message}")
