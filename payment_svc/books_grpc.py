"""The outbound transport to the books: the ledger and wallet gRPC clients behind the ports of
:mod:`payment_svc.books`. The only place in the payment service that builds their protobuf messages;
a failed call becomes the typed error the other service raised."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import grpc

from payment_svc.books import LedgerTransaction, Posting, ReferenceKind, Refusal, Side, WalletMovement
from svckit.context import IDEMPOTENCY_KEY_METADATA
from svckit.gen.common.v1 import money_pb2
from svckit.gen.ledger.v1 import ledger_service_pb2 as lpb
from svckit.gen.ledger.v1 import ledger_service_pb2_grpc as lpb_grpc
from svckit.gen.wallet.v1 import wallet_service_pb2 as wpb
from svckit.gen.wallet.v1 import wallet_service_pb2_grpc as wpb_grpc
from svckit.grpc_errors import from_rpc_error

_DIRECTION = {Side.DEBIT: lpb.DIRECTION_DEBIT, Side.CREDIT: lpb.DIRECTION_CREDIT}
_REFERENCE_KIND = {
    ReferenceKind.PAYMENT_ORDER: wpb.REFERENCE_KIND_PAYMENT_ORDER,
    ReferenceKind.REFUND: wpb.REFERENCE_KIND_REFUND,
    ReferenceKind.ADJUSTMENT: wpb.REFERENCE_KIND_ADJUSTMENT,
}


def _keyed(key: str) -> tuple[tuple[str, str]]:
    return ((IDEMPOTENCY_KEY_METADATA, key),)


def entry(posting: Posting) -> lpb.Entry:
    return lpb.Entry(
        account=posting.account,
        direction=_DIRECTION[posting.side],
        amount_minor=posting.amount_minor,
        currency=posting.currency,
    )


def transaction_request(tx: LedgerTransaction) -> lpb.PostTransactionRequest:
    return lpb.PostTransactionRequest(
        entries=[entry(p) for p in tx.postings],
        description=tx.description,
        external_ref=tx.external_ref,
        metadata=dict(tx.metadata),
    )


def _refusals(
    results: Sequence[lpb.PostTransactionsResult] | Sequence[wpb.ApplyBatchResult],
) -> list[Refusal | None]:
    return [Refusal(r.error.reason, r.error.message) if r.HasField("error") else None for r in results]


class GrpcLedger:
    """:class:`payment_svc.books.Ledger` over the ledger service's stub."""

    def __init__(self, stub: lpb_grpc.LedgerServiceStub, deadline_seconds: float) -> None:
        self._stub = stub
        self._deadline = deadline_seconds

    async def post(self, transaction: LedgerTransaction, key: str) -> int:
        try:
            reply = await self._stub.PostTransaction(
                transaction_request(transaction), metadata=_keyed(key), timeout=self._deadline
            )
        except grpc.aio.AioRpcError as exc:
            raise from_rpc_error(exc) from None
        return reply.transaction.id

    async def post_many(
        self, items: Sequence[tuple[LedgerTransaction, str]], batch_key: str
    ) -> list[Refusal | None]:
        request = lpb.PostTransactionsRequest(
            items=[
                lpb.PostTransactionsItem(idempotency_key=key, transaction=transaction_request(tx))
                for tx, key in items
            ]
        )
        try:
            reply = await self._stub.PostTransactions(
                request, metadata=_keyed(batch_key), timeout=self._deadline
            )
        except grpc.aio.AioRpcError as exc:
            raise from_rpc_error(exc) from None
        return _refusals(reply.results)

    async def reverse(
        self, transaction_id: int, description: str, external_ref: str, metadata: Mapping[str, str], key: str
    ) -> None:
        request = lpb.ReverseTransactionRequest(
            transaction_id=transaction_id,
            description=description,
            external_ref=external_ref,
            metadata=dict(metadata),
        )
        try:
            await self._stub.ReverseTransaction(request, metadata=_keyed(key), timeout=self._deadline)
        except grpc.aio.AioRpcError as exc:
            raise from_rpc_error(exc) from None


def _money(m: WalletMovement) -> money_pb2.Money:
    return money_pb2.Money(amount_minor=m.amount_minor, currency=m.currency)


def _reference(m: WalletMovement) -> wpb.Reference:
    return wpb.Reference(kind=_REFERENCE_KIND[m.reference_kind], id=m.reference_id)


def credit_request(m: WalletMovement) -> wpb.CreditRequest:
    return wpb.CreditRequest(seller_id=m.seller, amount=_money(m), reference=_reference(m))


def debit_request(m: WalletMovement) -> wpb.DebitRequest:
    return wpb.DebitRequest(seller_id=m.seller, amount=_money(m), reference=_reference(m))


class GrpcWallets:
    """:class:`payment_svc.books.Wallets` over the wallet service's stub."""

    def __init__(self, stub: wpb_grpc.WalletServiceStub, deadline_seconds: float) -> None:
        self._stub = stub
        self._deadline = deadline_seconds

    async def move(self, movement: WalletMovement, key: str) -> None:
        try:
            if movement.debit:
                await self._stub.Debit(debit_request(movement), metadata=_keyed(key), timeout=self._deadline)
            else:
                await self._stub.Credit(
                    credit_request(movement), metadata=_keyed(key), timeout=self._deadline
                )
        except grpc.aio.AioRpcError as exc:
            raise from_rpc_error(exc) from None

    async def debit_up_to(self, movement: WalletMovement, key: str) -> int:
        request = debit_request(movement)
        request.allow_shortfall = True
        try:
            reply = await self._stub.Debit(request, metadata=_keyed(key), timeout=self._deadline)
        except grpc.aio.AioRpcError as exc:
            raise from_rpc_error(exc) from None
        return int(reply.shortfall.amount_minor)

    async def move_many(self, items: Sequence[tuple[WalletMovement, str]]) -> list[Refusal | None]:
        request = wpb.ApplyBatchRequest(
            items=[
                wpb.ApplyBatchItem(idempotency_key=key, debit=debit_request(m))
                if m.debit
                else wpb.ApplyBatchItem(idempotency_key=key, credit=credit_request(m))
                for m, key in items
            ]
        )
        try:
            reply = await self._stub.ApplyBatch(request, timeout=self._deadline)
        except grpc.aio.AioRpcError as exc:
            raise from_rpc_error(exc) from None
        return _refusals(reply.results)
