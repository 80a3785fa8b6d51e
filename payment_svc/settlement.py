"""Settlement of pay-in money into the seller's wallet and the ledger, through the event backbone.

``OutboxSettlement`` writes an event in the same transaction as the order's SUCCESS (or a refund's
success). ``SettlementHandler`` consumes it: it credits (or debits) the wallet and posts the ledger,
each call idempotent on a key derived from the order or refund id, then flags the order — in the
consumer's transaction, which also records the event as processed. A failure is retried by the
backbone (transient) or dead-lettered for an operator (terminal).

Books, for an order of amount A with commission C (DESIGN.md, "Money in the books"):
    Dr asset:psp_receivable:stripe A / Cr liability:seller_payable:<seller> A-C / Cr revenue:commission C
and for a refund R of it, with c the commission it gives back (proportional, so a full refund
returns exactly C): the mirror image, and the wallet is debited R-c.
"""

from __future__ import annotations

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


class OutboxSettlement:
    """The payment service's SettlementSink: events into the outbox, inside the caller's transaction."""

    def __init__(self, stream: str) -> None:
        self.stream = stream

    async def order_succeeded(self, conn: AsyncConnection, order: Any, commission_minor: int) -> None:
        await outbox.add(
            conn,
            stream=self.stream,
            aggregate_id=order.payment_order_id,
            type=ORDER_SUCCEEDED,
            payload={
                "payment_order_id": order.payment_order_id,
                "checkout_id": order.checkout_id,
                "seller_account": order.seller_account,
                "amount_minor": order.amount_minor,
                "commission_minor": commission_minor,
                "currency": order.currency,
            },
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


class SettlementHandler:
    """Consumer handler (group ``settlement``): wallet and ledger for one settlement event."""

    def __init__(
        self, wallet: wpb_grpc.WalletServiceStub, ledger: lpb_grpc.LedgerServiceStub, deadline_seconds: float
    ) -> None:
        self._wallet = wallet
        self._ledger = ledger
        self._deadline = deadline_seconds

    async def __call__(self, conn: AsyncConnection, event: Event) -> None:
        p = event.payload
        if event.type == ORDER_SUCCEEDED:
            await self._settle(
                key=f"settle:order:{p['payment_order_id']}",
                seller=p["seller_account"],
                net=p["amount_minor"] - p["commission_minor"],
                currency=p["currency"],
                reference=wpb.Reference(kind=wpb.REFERENCE_KIND_PAYMENT_ORDER, id=p["payment_order_id"]),
                entries=order_entries(
                    p["seller_account"], p["amount_minor"], p["commission_minor"], p["currency"]
                ),
                description=f"pay-in {p['payment_order_id']} of checkout {p['checkout_id']}",
                external_ref=p["payment_order_id"],
                debit=False,
            )
            await repository.update_order(
                conn, p["payment_order_id"], wallet_updated=True, ledger_updated=True
            )
        elif event.type == REFUND_SUCCEEDED:
            await self._settle(
                key=f"settle:refund:{p['refund_id']}",
                seller=p["seller_account"],
                net=p["amount_minor"] - p["commission_minor"],
                currency=p["currency"],
                reference=wpb.Reference(kind=wpb.REFERENCE_KIND_REFUND, id=p["refund_id"]),
                entries=refund_entries(
                    p["seller_account"], p["amount_minor"], p["commission_minor"], p["currency"]
                ),
                description=f"refund {p['refund_id']} of {p['payment_order_id']}",
                external_ref=p["refund_id"],
                debit=True,
            )

    async def _settle(
        self,
        *,
        key: str,
        seller: str,
        net: int,
        currency: str,
        reference: wpb.Reference,
        entries: list[lpb.Entry],
        description: str,
        external_ref: str,
        debit: bool,
    ) -> None:
        metadata = ((IDEMPOTENCY_KEY_METADATA, key),)
        try:
            if net:
                money = money_pb2.Money(amount_minor=net, currency=currency)
                if debit:
                    request = wpb.DebitRequest(seller_id=seller, amount=money, reference=reference)
                    await self._wallet.Debit(request, metadata=metadata, timeout=self._deadline)
                else:
                    request = wpb.CreditRequest(seller_id=seller, amount=money, reference=reference)
                    await self._wallet.Credit(request, metadata=metadata, timeout=self._deadline)
            await self._ledger.PostTransaction(
                lpb.PostTransactionRequest(
                    entries=entries,
                    description=description,
                    external_ref=external_ref,
                    metadata={"source": "payment_svc", "reference": external_ref},
                ),
                metadata=metadata,
                timeout=self._deadline,
            )
        except grpc.aio.AioRpcError as exc:
            raise _classified(from_rpc_error(exc)) from None


def _classified(err: DomainError) -> Exception:
    # Unavailable, a key still in use, and unexpected server errors may pass; anything the other
    # service refused on its merits (bad request, insufficient funds) needs a person.
    if isinstance(err, Unavailable | Aborted | Internal):
        return TransientError(f"{err.reason}: {err.message}")
    return TerminalError(f"{err.reason}: {err.message}")
