"""Reading the books of other services for internal checks: ports, and their gRPC adapters."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

import grpc

from ledger_svc.naming import SELLER_PAYABLE_PREFIX, split_seller_payable
from svckit.gen.ledger.v1 import ledger_service_pb2 as lpb
from svckit.gen.ledger.v1 import ledger_service_pb2_grpc as lpb_grpc
from svckit.gen.wallet.v1 import wallet_service_pb2 as wpb
from svckit.gen.wallet.v1 import wallet_service_pb2_grpc as wpb_grpc
from svckit.grpc_errors import from_rpc_error


@dataclass(frozen=True)
class WalletTotal:
    seller_id: str
    currency: str
    total_minor: int
    """available + reserved: everything the platform still owes the seller."""


@dataclass(frozen=True)
class PayableAccount:
    """A ``liability:seller_payable:<seller>/<CUR>`` account: one per seller and currency."""

    seller_id: str
    currency: str
    """The account's currency (what it holds)."""
    balance_minor: int
    named_currency: str | None = None
    """The currency its name carries (None for a name without one)."""


class WalletReader(Protocol):
    def wallets(self, seller_id: str) -> AsyncIterator[WalletTotal]: ...


class LedgerReader(Protocol):
    def seller_payables(self, seller_id: str) -> AsyncIterator[PayableAccount]: ...


class GrpcWalletReader:
    def __init__(self, stub: wpb_grpc.WalletServiceStub, deadline_seconds: float) -> None:
        self._stub = stub
        self._deadline = deadline_seconds

    async def wallets(self, seller_id: str) -> AsyncIterator[WalletTotal]:
        token = ""
        while True:
            try:
                page = await self._stub.ListWallets(
                    wpb.ListWalletsRequest(seller_id=seller_id, page_size=1000, page_token=token),
                    timeout=self._deadline,
                )
            except grpc.aio.AioRpcError as exc:
                raise from_rpc_error(exc) from None
            for w in page.wallets:
                yield WalletTotal(
                    w.seller_id, w.available.currency, w.available.amount_minor + w.reserved.amount_minor
                )
            if not page.next_page_token:
                return
            token = page.next_page_token


class GrpcLedgerReader:
    def __init__(self, stub: lpb_grpc.LedgerServiceStub, deadline_seconds: float) -> None:
        self._stub = stub
        self._deadline = deadline_seconds

    async def seller_payables(self, seller_id: str) -> AsyncIterator[PayableAccount]:
        prefix = SELLER_PAYABLE_PREFIX + seller_id
        token = ""
        try:
            while True:
                page = await self._stub.ListAccounts(
                    lpb.ListAccountsRequest(name_prefix=prefix, page_size=1000, page_token=token),
                    timeout=self._deadline,
                )
                for account in page.accounts:
                    owner, named_currency = split_seller_payable(account.name) or ("", None)
                    if seller_id and owner != seller_id:
                        continue  # a prefix match on another seller (seller_1 vs seller_10)
                    balance = await self._stub.GetBalance(
                        lpb.GetBalanceRequest(account=account.name), timeout=self._deadline
                    )
                    yield PayableAccount(owner, balance.currency, balance.balance_minor, named_currency)
                if not page.next_page_token:
                    return
                token = page.next_page_token
        except grpc.aio.AioRpcError as exc:
            raise from_rpc_error(exc) from None
