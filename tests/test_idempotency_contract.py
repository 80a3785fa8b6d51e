"""One idempotency contract, every implementation held to it.

The services keep idempotency records in three ways that share one table layout, one lock-id rule and
one fingerprint rule: ``svckit.idempotency``'s ``run`` (one call, one transaction) and ``run_many`` /
``probe_many`` (batch items, used by the wallet), and the ledger's posting functions, which follow
the same protocol in PL/pgSQL so that the key, the effect and the answer cost one statement
(``ledger_post`` for a single posting, ``ledger_post_batch`` for a batch or a coalesced group).
The same scenarios run against each of them, through the real RPCs:

- a refused request stores nothing: once the refusal's cause is gone, the same key and request
  take effect (the key was released, not kept with the refusal);
- same key, same request: the same answer, flagged as a replay;
- same key, different request: ``IDEMPOTENCY_KEY_REUSED``;
- a key held by a request still running (its advisory lock taken elsewhere): ``IDEMPOTENCY_KEY_IN_USE``,
  and the key works once released.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Protocol

import grpc
import psycopg
import pytest

from svckit.gen.common.v1 import money_pb2
from svckit.gen.ledger.v1 import ledger_service_pb2 as lpb
from svckit.gen.ledger.v1 import ledger_service_pb2_grpc as lpb_grpc
from svckit.gen.wallet.v1 import wallet_service_pb2 as wpb
from svckit.gen.wallet.v1 import wallet_service_pb2_grpc as wpb_grpc
from svckit.idempotency import lock_id
from svckit.testing import refusal_info
from tests.ledger.ledger_helpers import md, transfer
from tests.ledger.test_ledger_coalescing import ledger


@dataclass(frozen=True)
class Result:
    """An attempt's outcome: ("ok", answer bytes, replayed) or ("error", reason, "")."""

    status: str
    detail: bytes | str
    replayed: bool = False


class Implementation(Protocol):
    scope: str
    database_url: str

    async def attempt(self, key: str, amount: int) -> Result:
        """The operation under ``key`` for ``amount``; refused until ``fund`` ran."""
        ...

    async def fund(self) -> None: ...


def _replayed(metadata) -> bool:
    return dict(metadata).get("idempotent-replayed") == "true"


def _usd(amount: int) -> money_pb2.Money:
    return money_pb2.Money(amount_minor=amount, currency="USD")


class WalletReserve:
    """svckit.idempotency ``run``: the wallet's Reserve (always one transaction per call)."""

    scope = "wallet.Reserve"

    def __init__(self, channel: grpc.aio.Channel, database_url: str) -> None:
        self._stub = wpb_grpc.WalletServiceStub(channel)
        self.database_url = database_url
        self._seller = f"ic-{uuid.uuid4().hex[:10]}"

    async def attempt(self, key: str, amount: int) -> Result:
        request = wpb.ReserveRequest(
            seller_id=self._seller,
            amount=_usd(amount),
            reference=wpb.Reference(kind=wpb.REFERENCE_KIND_PAYOUT, id=f"po-{amount}"),
        )
        call = self._stub.Reserve(request, metadata=md(key))
        try:
            reply = await call
        except grpc.aio.AioRpcError as exc:
            return Result("error", refusal_info(exc).reason)
        return Result("ok", reply.SerializeToString(), _replayed(await call.initial_metadata()))

    async def fund(self) -> None:
        await self._stub.Credit(
            wpb.CreditRequest(
                seller_id=self._seller,
                amount=_usd(1_000),
                reference=wpb.Reference(kind=wpb.REFERENCE_KIND_ADJUSTMENT, id="fund"),
            ),
            metadata=md(),
        )


class WalletBatchDebit(WalletReserve):
    """svckit.idempotency ``run_many`` / ``probe_many``: a debit item of the wallet's ApplyBatch."""

    scope = "wallet.Debit"

    async def attempt(self, key: str, amount: int) -> Result:
        debit = wpb.DebitRequest(
            seller_id=self._seller,
            amount=_usd(amount),
            reference=wpb.Reference(kind=wpb.REFERENCE_KIND_REFUND, id="re-1"),
        )
        request = wpb.ApplyBatchRequest(items=[wpb.ApplyBatchItem(idempotency_key=key, debit=debit)])
        (result,) = (await self._stub.ApplyBatch(request, metadata=md())).results
        if result.WhichOneof("outcome") == "error":
            return Result("error", result.error.reason)
        return Result("ok", result.debit.SerializeToString(), result.replayed)


class LedgerPosting:
    """The ledger's ``ledger_post``: PostTransaction on a ledger that does not coalesce."""

    scope = "ledger.PostTransaction"

    def __init__(self, stub: lpb_grpc.LedgerServiceStub, database_url: str) -> None:
        self._stub = stub
        self.database_url = database_url
        tag = uuid.uuid4().hex[:10]
        # seller_payable accounts are non-negative: a posting taking money out is refused until funded.
        self._seller, self._cash, self._bank = (
            f"liability:seller_payable:ic{tag}",
            f"asset:cash:ic{tag}",
            f"asset:bank:ic{tag}",
        )

    def _request(self, amount: int) -> lpb.PostTransactionRequest:
        return transfer(self._seller, self._cash, amount)

    async def attempt(self, key: str, amount: int) -> Result:
        call = self._stub.PostTransaction(self._request(amount), metadata=md(key))
        try:
            reply = await call
        except grpc.aio.AioRpcError as exc:
            return Result("error", refusal_info(exc).reason)
        return Result("ok", reply.SerializeToString(), _replayed(await call.initial_metadata()))

    async def fund(self) -> None:
        await self._stub.PostTransaction(transfer(self._bank, self._seller, 1_000), metadata=md())


class LedgerBatchItem(LedgerPosting):
    """The ledger's ``ledger_post_batch``: an item of PostTransactions (coalesced single postings
    take the same function)."""

    async def attempt(self, key: str, amount: int) -> Result:
        request = lpb.PostTransactionsRequest(
            items=[lpb.PostTransactionsItem(idempotency_key=key, transaction=self._request(amount))]
        )
        (result,) = (await self._stub.PostTransactions(request, metadata=md())).results
        if result.WhichOneof("outcome") == "error":
            return Result("error", result.error.reason)
        return Result("ok", lpb.PostTransactionResponse(transaction=result.transaction).SerializeToString(),
                      result.replayed)  # fmt: skip


@contextlib.contextmanager
def key_held(implementation: Implementation, key: str) -> Iterator[None]:
    """The key's advisory lock held by another session, as a request still running holds it."""
    with psycopg.connect(implementation.database_url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (lock_id(implementation.scope, key),))
        try:
            yield
        finally:
            conn.execute("SELECT pg_advisory_unlock_all()")


async def keeps_the_contract(impl: Implementation) -> None:
    first, second = f"ic-{uuid.uuid4().hex}", f"ic-{uuid.uuid4().hex}"

    refused = await impl.attempt(first, 10)
    assert refused.status == "error" and refused.detail in {"INSUFFICIENT_FUNDS", "INSUFFICIENT_BALANCE"}
    await impl.fund()
    done = await impl.attempt(first, 10)
    assert done.status == "ok" and not done.replayed, "a refusal must not be kept under the key"

    again = await impl.attempt(first, 10)
    assert again == Result("ok", done.detail, True)

    assert await impl.attempt(first, 11) == Result("error", "IDEMPOTENCY_KEY_REUSED")

    with key_held(impl, second):
        assert await impl.attempt(second, 10) == Result("error", "IDEMPOTENCY_KEY_IN_USE")
    released = await impl.attempt(second, 10)
    assert released.status == "ok" and not released.replayed


def _url(infra, services, name: str) -> str:
    return infra.database_url_for(services[name].settings.database_name)


@contextlib.asynccontextmanager
async def _implementation(which: str, infra, services, channels) -> AsyncIterator[Implementation]:
    if which == "svckit run (wallet Reserve)":
        yield WalletReserve(channels["wallet"], _url(infra, services, "wallet"))
    elif which == "svckit run_many (wallet ApplyBatch)":
        yield WalletBatchDebit(channels["wallet"], _url(infra, services, "wallet"))
    elif which == "ledger_post_batch (ledger PostTransactions)":
        yield LedgerBatchItem(lpb_grpc.LedgerServiceStub(channels["ledger"]), _url(infra, services, "ledger"))
    else:
        async with ledger(infra, coalesce_postings=False) as (stub, _admin, url):
            yield LedgerPosting(stub, url)


@pytest.mark.parametrize(
    "which",
    [
        "svckit run (wallet Reserve)",
        "svckit run_many (wallet ApplyBatch)",
        "ledger_post (ledger PostTransaction)",
        "ledger_post_batch (ledger PostTransactions)",
    ],
)
async def test_every_implementation_keeps_the_idempotency_contract(which, infra, services, channels):
    async with _implementation(which, infra, services, channels) as impl:
        await keeps_the_contract(impl)
