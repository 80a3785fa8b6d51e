"""gRPC transport of ledger.v1.LedgerService: translate messages, call the service, nothing else."""

from __future__ import annotations

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy.ext.asyncio import AsyncEngine

from ledger_svc.service import Account, AccountType, LedgerService
from svckit.gen.ledger.v1 import ledger_service_pb2 as pb
from svckit.gen.ledger.v1 import ledger_service_pb2_grpc as pb_grpc
from svckit.idempotency import IdempotencyStore, idempotent_rpc

_TYPE_TO_PB = {
    AccountType.ASSET: pb.ACCOUNT_TYPE_ASSET,
    AccountType.LIABILITY: pb.ACCOUNT_TYPE_LIABILITY,
    AccountType.EQUITY: pb.ACCOUNT_TYPE_EQUITY,
    AccountType.REVENUE: pb.ACCOUNT_TYPE_REVENUE,
    AccountType.EXPENSE: pb.ACCOUNT_TYPE_EXPENSE,
}


def _ts(dt) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(dt)
    return ts


def account_to_pb(account: Account) -> pb.Account:
    return pb.Account(
        name=account.name,
        type=_TYPE_TO_PB[account.type],
        currency=account.currency,
        create_time=_ts(account.created_at),
    )


class LedgerServicer(pb_grpc.LedgerServiceServicer):
    def __init__(self, service: LedgerService, engine: AsyncEngine, idempotency: IdempotencyStore) -> None:
        self._service = service
        self._engine = engine
        self._idempotency = idempotency

    async def CreateAccount(self, request: pb.CreateAccountRequest, context: grpc.aio.ServicerContext):
        async def work(conn):
            account = await self._service.create_account(conn, request.name, request.currency)
            return pb.CreateAccountResponse(account=account_to_pb(account))

        return await idempotent_rpc(
            self._idempotency, context, "ledger.CreateAccount", request, pb.CreateAccountResponse, work
        )

    async def GetAccount(self, request: pb.GetAccountRequest, context: grpc.aio.ServicerContext):
        async with self._engine.connect() as conn:
            account = await self._service.get_account(conn, request.name)
        return pb.GetAccountResponse(account=account_to_pb(account))
