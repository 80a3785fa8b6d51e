"""gRPC transport of wallet.v1.WalletService."""

from __future__ import annotations

import grpc
from sqlalchemy.ext.asyncio import AsyncEngine

from svckit.gen.common.v1 import money_pb2
from svckit.gen.wallet.v1 import wallet_service_pb2 as pb
from svckit.gen.wallet.v1 import wallet_service_pb2_grpc as pb_grpc
from svckit.idempotency import IdempotencyStore
from svckit.money import Money
from wallet_svc.service import Wallet, WalletService


def money_to_pb(money: Money) -> money_pb2.Money:
    return money_pb2.Money(amount_minor=money.amount_minor, currency=money.currency)


def wallet_to_pb(wallet: Wallet) -> pb.Wallet:
    return pb.Wallet(
        seller_id=wallet.seller_id,
        available=money_to_pb(wallet.available),
        reserved=money_to_pb(wallet.reserved),
    )


class WalletServicer(pb_grpc.WalletServiceServicer):
    def __init__(self, service: WalletService, engine: AsyncEngine, idempotency: IdempotencyStore) -> None:
        self._service = service
        self._engine = engine
        self._idempotency = idempotency

    async def GetWallet(self, request: pb.GetWalletRequest, context: grpc.aio.ServicerContext):
        async with self._engine.connect() as conn:
            wallet = await self._service.get_wallet(conn, request.seller_id, request.currency)
        return pb.GetWalletResponse(wallet=wallet_to_pb(wallet))
