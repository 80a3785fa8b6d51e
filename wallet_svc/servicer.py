"""gRPC transport of wallet.v1.WalletService: translate messages, call the service, nothing else."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import grpc
from google.protobuf.message import Message
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from svckit.context import idempotency_key_var
from svckit.gen.common.v1 import money_pb2
from svckit.gen.wallet.v1 import wallet_service_pb2 as pb
from svckit.gen.wallet.v1 import wallet_service_pb2_grpc as pb_grpc
from svckit.idempotency import IdempotencyStore, idempotent_rpc
from svckit.money import Money
from svckit.protobuf import timestamp
from wallet_svc.service import (
    Movement,
    MovementKind,
    MovementResult,
    Reference,
    ReferenceKind,
    Reservation,
    ReservationState,
    Wallet,
    WalletService,
)

_REFERENCE_FROM_PB = {
    pb.REFERENCE_KIND_PAYMENT_ORDER: ReferenceKind.PAYMENT_ORDER,
    pb.REFERENCE_KIND_REFUND: ReferenceKind.REFUND,
    pb.REFERENCE_KIND_PAYOUT: ReferenceKind.PAYOUT,
    pb.REFERENCE_KIND_ADJUSTMENT: ReferenceKind.ADJUSTMENT,
}
_REFERENCE_TO_PB = {v: k for k, v in _REFERENCE_FROM_PB.items()}
_KIND_TO_PB = {
    MovementKind.CREDIT: pb.MOVEMENT_KIND_CREDIT,
    MovementKind.DEBIT: pb.MOVEMENT_KIND_DEBIT,
    MovementKind.RESERVE: pb.MOVEMENT_KIND_RESERVE,
    MovementKind.RELEASE: pb.MOVEMENT_KIND_RELEASE,
    MovementKind.CAPTURE: pb.MOVEMENT_KIND_CAPTURE,
}
_STATE_TO_PB = {
    ReservationState.OPEN: pb.RESERVATION_STATE_OPEN,
    ReservationState.PARTIALLY_SETTLED: pb.RESERVATION_STATE_PARTIALLY_SETTLED,
    ReservationState.CLOSED: pb.RESERVATION_STATE_CLOSED,
}


def money_to_pb(money: Money) -> money_pb2.Money:
    return money_pb2.Money(amount_minor=money.amount_minor, currency=money.currency)


def reference_to_pb(reference: Reference) -> pb.Reference:
    return pb.Reference(kind=_REFERENCE_TO_PB[reference.kind], id=reference.id)


def reference_from_pb(reference: pb.Reference) -> tuple[ReferenceKind | None, str]:
    """(kind or None when unspecified/unknown, id); the service validates both."""
    return _REFERENCE_FROM_PB.get(reference.kind), reference.id


def wallet_to_pb(wallet: Wallet) -> pb.Wallet:
    message = pb.Wallet(
        seller_id=wallet.seller_id,
        available=money_to_pb(wallet.available),
        reserved=money_to_pb(wallet.reserved),
    )
    if wallet.updated_at is not None:
        message.update_time.CopyFrom(timestamp(wallet.updated_at))
    return message


def movement_to_pb(movement: Movement) -> pb.Movement:
    return pb.Movement(
        movement_id=str(movement.id),
        seller_id=movement.seller_id,
        kind=_KIND_TO_PB[movement.kind],
        amount=money_to_pb(movement.amount),
        available_after=money_to_pb(movement.available_after),
        reserved_after=money_to_pb(movement.reserved_after),
        reference=reference_to_pb(movement.reference),
        reservation_id=movement.reservation_id or "",
        idempotency_key=movement.idempotency_key,
        create_time=timestamp(movement.created_at),
    )


def reservation_to_pb(reservation: Reservation) -> pb.Reservation:
    return pb.Reservation(
        reservation_id=reservation.id,
        seller_id=reservation.seller_id,
        state=_STATE_TO_PB[reservation.state],
        amount=money_to_pb(reservation.amount),
        released=money_to_pb(reservation.released),
        captured=money_to_pb(reservation.captured),
        remaining=money_to_pb(reservation.remaining),
        reference=reference_to_pb(reservation.reference),
        create_time=timestamp(reservation.created_at),
        update_time=timestamp(reservation.updated_at),
    )


def _result_fields(result: MovementResult) -> dict[str, Message]:
    fields: dict[str, Message] = {
        "movement": movement_to_pb(result.movement),
        "wallet": wallet_to_pb(result.wallet),
    }
    if result.reservation is not None:
        fields["reservation"] = reservation_to_pb(result.reservation)
    return fields


class WalletServicer(pb_grpc.WalletServiceServicer):
    def __init__(self, service: WalletService, engine: AsyncEngine, idempotency: IdempotencyStore) -> None:
        self._service = service
        self._engine = engine
        self._idempotency = idempotency

    async def _mutate(
        self,
        context: grpc.aio.ServicerContext,
        scope: str,
        request: Message,
        response_type: type[Message],
        call: Callable[[AsyncConnection, str], Awaitable[MovementResult]],
    ) -> Message:
        async def work(conn: AsyncConnection) -> Message:
            # idempotent_rpc has validated the key before any work runs.
            result = await call(conn, idempotency_key_var.get() or "")
            return response_type(**_result_fields(result))

        return await idempotent_rpc(self._idempotency, context, scope, request, response_type, work)

    # ---- reads ----------------------------------------------------------------------------------

    async def GetWallet(self, request: pb.GetWalletRequest, context: grpc.aio.ServicerContext):
        async with self._engine.connect() as conn:
            wallet = await self._service.get_wallet(conn, request.seller_id, request.currency)
        return pb.GetWalletResponse(wallet=wallet_to_pb(wallet))

    async def ListWallets(self, request: pb.ListWalletsRequest, context: grpc.aio.ServicerContext):
        async with self._engine.connect() as conn:
            page = await self._service.list_wallets(
                conn, request.seller_id, request.page_size, request.page_token
            )
        return pb.ListWalletsResponse(
            wallets=[wallet_to_pb(w) for w in page.items], next_page_token=page.next_page_token
        )

    async def ListMovements(self, request: pb.ListMovementsRequest, context: grpc.aio.ServicerContext):
        async with self._engine.connect() as conn:
            page = await self._service.list_movements(
                conn, request.seller_id, request.currency, request.page_size, request.page_token
            )
        return pb.ListMovementsResponse(
            movements=[movement_to_pb(m) for m in page.items], next_page_token=page.next_page_token
        )

    async def GetReservation(self, request: pb.GetReservationRequest, context: grpc.aio.ServicerContext):
        async with self._engine.connect() as conn:
            reservation = await self._service.get_reservation(conn, request.reservation_id)
        return pb.GetReservationResponse(reservation=reservation_to_pb(reservation))

    # ---- movements --------------------------------------------------------------------------------

    async def Credit(self, request: pb.CreditRequest, context: grpc.aio.ServicerContext):
        return await self._mutate(
            context,
            "wallet.Credit",
            request,
            pb.CreditResponse,
            lambda conn, key: self._service.credit(
                conn,
                request.seller_id,
                request.amount.amount_minor,
                request.amount.currency,
                reference_from_pb(request.reference),
                key,
            ),
        )

    async def Debit(self, request: pb.DebitRequest, context: grpc.aio.ServicerContext):
        return await self._mutate(
            context,
            "wallet.Debit",
            request,
            pb.DebitResponse,
            lambda conn, key: self._service.debit(
                conn,
                request.seller_id,
                request.amount.amount_minor,
                request.amount.currency,
                reference_from_pb(request.reference),
                key,
            ),
        )

    async def Reserve(self, request: pb.ReserveRequest, context: grpc.aio.ServicerContext):
        return await self._mutate(
            context,
            "wallet.Reserve",
            request,
            pb.ReserveResponse,
            lambda conn, key: self._service.reserve(
                conn,
                request.seller_id,
                request.amount.amount_minor,
                request.amount.currency,
                reference_from_pb(request.reference),
                key,
            ),
        )

    async def Release(self, request: pb.ReleaseRequest, context: grpc.aio.ServicerContext):
        return await self._mutate(
            context,
            "wallet.Release",
            request,
            pb.ReleaseResponse,
            lambda conn, key: self._service.release(
                conn,
                request.reservation_id,
                _optional_amount(request),
                reference_from_pb(request.reference),
                key,
            ),
        )

    async def CaptureReservation(
        self, request: pb.CaptureReservationRequest, context: grpc.aio.ServicerContext
    ):
        return await self._mutate(
            context,
            "wallet.CaptureReservation",
            request,
            pb.CaptureReservationResponse,
            lambda conn, key: self._service.capture(
                conn,
                request.reservation_id,
                _optional_amount(request),
                reference_from_pb(request.reference),
                key,
            ),
        )


def _optional_amount(request: pb.ReleaseRequest | pb.CaptureReservationRequest) -> tuple[int, str] | None:
    if not request.HasField("amount"):
        return None
    return request.amount.amount_minor, request.amount.currency
