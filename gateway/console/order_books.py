"""The books of one order on its console page: the ledger transactions and the seller's wallet
movements its settlement and its refunds' made, each linked (to the transaction's page, the accounts'
pages and the seller's page).

Settlement books an order under its id and a refund under the refund's id: the ledger transaction's
``external_ref`` and the wallet movement's reference id (``payment_svc.settlement``). So the reads are
``ListTransactions(external_ref=id)`` and ``ListMovements(seller, currency, reference_id=id)``, one of
each per id, all at once. A book that does not answer leaves its table with the error; the rest of the
order page is shown.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode

import grpc
from fastapi import Request

from gateway.console import web
from gateway.upstream import call
from svckit.gen.ledger.v1 import ledger_service_pb2 as lpb
from svckit.gen.payments.v1 import payment_service_pb2 as pb
from svckit.gen.wallet.v1 import wallet_service_pb2 as wpb

# Refunds whose books are read (the newest first): each costs two reads. An order with more shows
# the rest of its refunds in the refunds table, without their books.
MAX_REFUNDS_BOOKED = 20
_PAGE = 20  # transactions or movements per id; settlement makes one or two of each


@dataclass(frozen=True)
class _Line:
    account: str
    url: str
    debit: str
    credit: str


@dataclass(frozen=True)
class _LedgerRow:
    id: int
    url: str
    of: str
    posted: str
    description: str
    reverses: int
    lines: list[_Line]


@dataclass(frozen=True)
class _WalletRow:
    id: str
    of: str
    kind: str
    amount: str
    available_after: str
    at: str


@dataclass
class Books:
    """What the order page shows under "Books"; an error text where a book did not answer."""

    transactions: list[_LedgerRow] = field(default_factory=list)
    movements: list[_WalletRow] = field(default_factory=list)
    seller_url: str = ""
    ledger_error: str = ""
    wallet_error: str = ""
    refunds_left_out: int = 0


def booked_refunds(refunds: Sequence[pb.Refund]) -> list[str]:
    """The refunds settlement booked (only succeeded ones are), newest first, at most the cap."""
    done = [r for r in refunds if r.state == pb.REFUND_STATE_SUCCEEDED]
    done.sort(key=lambda r: (r.create_time.seconds, r.create_time.nanos), reverse=True)
    return [r.refund_id for r in done]


async def _answers(request: Request, calls: Sequence[tuple[Any, Any]]) -> tuple[list[Any], str]:
    """Every call's reply, or none and the first refusal's text."""

    async def one(method: Any, message: Any) -> Any:
        return (await call(method, message, web.upstream_deadline(request)))[0]

    work: list[Awaitable[Any]] = [one(m, msg) for m, msg in calls]
    try:
        return list(await asyncio.gather(*work)), ""
    except grpc.aio.AioRpcError as exc:
        return [], web.rpc_error_text(exc)[1]


def _ledger_row(tx: lpb.Transaction, of: str) -> _LedgerRow:
    lines = [
        _Line(
            account=e.account,
            url="/console/books/account?" + urlencode({"name": e.account}),
            debit=web.money_text(e.amount_minor, e.currency) if e.direction == lpb.DIRECTION_DEBIT else "",
            credit=web.money_text(e.amount_minor, e.currency) if e.direction == lpb.DIRECTION_CREDIT else "",
        )
        for e in tx.entries
    ]
    return _LedgerRow(
        id=tx.id,
        url=f"/console/books/transactions/{tx.id}",
        of=of,
        posted=web.when_text(tx.post_time),
        description=tx.description,
        reverses=tx.reverses_id,
        lines=lines,
    )


def _wallet_row(m: wpb.Movement, of: str) -> _WalletRow:
    return _WalletRow(
        id=m.movement_id,
        of=of,
        kind=wpb.MovementKind.Name(m.kind).removeprefix("MOVEMENT_KIND_").lower(),
        amount=web.money_text(m.amount.amount_minor, m.amount.currency),
        available_after=web.money_text(m.available_after.amount_minor, m.available_after.currency),
        at=web.when_text(m.create_time),
    )


def order_transactions(request: Request, order_id: str) -> Awaitable[tuple[list[Any], str]]:
    """The order's own ledger transactions: needs only its id, so it runs with the page's first reads."""
    ledger = request.app.state.upstreams.ledger
    return _answers(request, [(ledger.ListTransactions, _by_ref(order_id))])


def _by_ref(ref: str) -> lpb.ListTransactionsRequest:
    return lpb.ListTransactionsRequest(external_ref=ref, page_size=_PAGE)


async def books(
    request: Request,
    order: pb.PaymentOrder,
    refund_ids: Sequence[str],
    order_ledger: tuple[list[Any], str],
) -> Books:
    """The refunds' ledger transactions and every id's wallet movements, read at once, with the order's
    own transactions read before; one book's error does not hide the other."""
    up = request.app.state.upstreams
    shown = list(refund_ids[:MAX_REFUNDS_BOOKED])
    ids = [order.payment_order_id, *shown]
    (refund_ledger, refund_error), (moves, wallet_error) = await asyncio.gather(
        _answers(request, [(up.ledger.ListTransactions, _by_ref(r)) for r in shown]),
        _answers(
            request,
            [
                (
                    up.wallet.ListMovements,
                    wpb.ListMovementsRequest(
                        seller_id=order.seller_account,
                        currency=order.currency,
                        page_size=_PAGE,
                        reference_id=ref,
                    ),
                )
                for ref in ids
            ],
        ),
    )
    order_replies, order_error = order_ledger
    ledger_error = order_error or refund_error
    transactions: list[_LedgerRow] = []
    if not ledger_error:
        for ref, reply in zip(ids, [*order_replies, *refund_ledger], strict=True):
            transactions += [_ledger_row(tx, ref) for tx in reply.transactions]
    movements: list[tuple[int, _WalletRow]] = []
    for ref, reply in zip(ids, moves, strict=False):
        # Within a wallet a higher id is a later movement: oldest first, as the ledger's list.
        movements += [(int(m.movement_id), _wallet_row(m, ref)) for m in reply.movements]
    return Books(
        transactions=sorted(transactions, key=lambda t: t.id),
        movements=[row for _, row in sorted(movements, key=lambda pair: pair[0])],
        seller_url=f"/console/sellers/{quote(order.seller_account, safe='')}?"
        + urlencode({"currency": order.currency}),
        ledger_error=ledger_error,
        wallet_error=wallet_error,
        refunds_left_out=max(0, len(refund_ids) - len(shown)),
    )
