"""gRPC transport of wallet.v1.WalletService: translate messages, call the service, nothing else."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypedDict

import grpc
from google.protobuf.message import Message

from svckit.context import REPLAYED_METADATA, idempotency_key_var
from svckit.errors import DomainError, InvalidArgument
from svckit.gen.common.v1 import money_pb2
from svckit.gen.wallet.v1 import wallet_service_pb2 as pb
from svckit.gen.wallet.v1 import wallet_service_pb2_grpc as pb_grpc
from svckit.idempotency import ItemKey, StoredAnswer, validate_key
from svckit.money import Money
from svckit.protobuf import time_window, timestamp
from wallet_svc.coalescer import MovementCoalescer
from wallet_svc.domain import (
    MAX_BATCH_ITEMS,
    BatchItem,
    Movement,
    MovementKind,
    MovementResult,
    Reference,
    ReferenceKind,
    Reservation,
    ReservationState,
    Wallet,
)
from wallet_svc.service import WalletService
from wallet_svc.uow import WalletUnitOfWork

CREDIT_SCOPE, DEBIT_SCOPE = "wallet.Credit", "wallet.Debit"

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


class _MovementFields(TypedDict):
    movement: pb.Movement
    wallet: pb.Wallet


def _movement_fields(result: MovementResult) -> _MovementFields:
    """A credit's or debit's response fields (neither touches a reservation)."""
    return {"movement": movement_to_pb(result.movement), "wallet": wallet_to_pb(result.wallet)}


def _result_fields(result: MovementResult) -> dict[str, Message]:
    """The fields of any mutating call's response, for _mutate, which builds it by type."""
    fields: dict[str, Message] = {
        "movement": movement_to_pb(result.movement),
        "wallet": wallet_to_pb(result.wallet),
    }
    if result.reservation is not None:
        fields["reservation"] = reservation_to_pb(result.reservation)
    return fields


RESERVE_SCOPE, CAPTURE_SCOPE = "wallet.Reserve", "wallet.CaptureReservation"

# What a credit/debit item needs from the transport: its key's scope and the response it stores.
_OPERATIONS: dict[MovementKind, tuple[str, type[pb.CreditResponse] | type[pb.DebitResponse]]] = {
    MovementKind.CREDIT: (CREDIT_SCOPE, pb.CreditResponse),
    MovementKind.DEBIT: (DEBIT_SCOPE, pb.DebitResponse),
}

# Every batch item kind: its oneof field in ApplyBatchItem/ApplyBatchResult, its key's scope (the
# single RPC's) and the response its record keeps (the single RPC's).
_BATCH_KINDS: dict[str, tuple[MovementKind, str, type[Message]]] = {
    "credit": (MovementKind.CREDIT, CREDIT_SCOPE, pb.CreditResponse),
    "debit": (MovementKind.DEBIT, DEBIT_SCOPE, pb.DebitResponse),
    "reserve": (MovementKind.RESERVE, RESERVE_SCOPE, pb.ReserveResponse),
    "capture": (MovementKind.CAPTURE, CAPTURE_SCOPE, pb.CaptureReservationResponse),
}
_RESPONSE_OF_SCOPE = {scope: response_type for _, scope, response_type in _BATCH_KINDS.values()}


class MovementAnswersPb:
    """What a batch item's idempotency record keeps: its single RPC's response
    (``wallet_svc.uow.MovementAnswers``)."""

    def encode(self, scope: str, result: MovementResult) -> bytes:
        return _RESPONSE_OF_SCOPE[scope](**_result_fields(result)).SerializeToString()


def batch_item(
    kind: MovementKind,
    key: str,
    request: pb.CreditRequest | pb.DebitRequest | pb.ReserveRequest | pb.CaptureReservationRequest,
) -> BatchItem:
    """An item with the key exactly as svckit.idempotency would derive it for the single RPC (scope,
    lock id, fingerprint of the request message), so batch and single calls share keys."""
    scope = next(s for k, s, _ in _BATCH_KINDS.values() if k is kind)
    if isinstance(request, pb.CaptureReservationRequest):
        return BatchItem(
            kind=kind,
            seller_id="",
            amount_minor=request.amount.amount_minor,
            currency=request.amount.currency,
            reference=reference_from_pb(request.reference),
            key=ItemKey.of(scope, key, request),
            reservation_id=request.reservation_id,
            amount_given=request.HasField("amount"),
        )
    return BatchItem(
        kind=kind,
        seller_id=request.seller_id,
        amount_minor=request.amount.amount_minor,
        currency=request.amount.currency,
        reference=reference_from_pb(request.reference),
        key=ItemKey.of(scope, key, request),
    )


def _item_error(err: DomainError) -> pb.ItemError:
    return pb.ItemError(reason=err.reason, message=err.message, code=err.kind.grpc_code.name)


class WalletServicer(pb_grpc.WalletServiceServicer):
    def __init__(
        self,
        service: WalletService,
        uow: WalletUnitOfWork,
        coalescer: MovementCoalescer | None = None,
    ) -> None:
        self._service = service
        self._uow = uow
        self._coalescer = coalescer

    async def _coalesced(
        self,
        context: grpc.aio.ServicerContext,
        kind: MovementKind,
        request: pb.CreditRequest | pb.DebitRequest,
    ) -> Message:
        """Credit/Debit through the coalescer: the same answer the single path gives, including the
        key refusals (missing or too long before anything else) and the replay metadata."""
        scope, response_type = _OPERATIONS[kind]
        assert self._coalescer is not None
        key = validate_key(idempotency_key_var.get())
        apply = self._service.credit if kind is MovementKind.CREDIT else self._service.debit

        async def alone() -> StoredAnswer:
            # The plain path, for a call that has no company. It runs in the coalescer's task, whose
            # context belongs to another call: the key is passed explicitly, not read from the context.
            async def work(uow: WalletUnitOfWork) -> pb.CreditResponse | pb.DebitResponse:
                result = await apply(
                    uow,
                    request.seller_id,
                    request.amount.amount_minor,
                    request.amount.currency,
                    reference_from_pb(request.reference),
                    key,
                )
                return response_type(**_movement_fields(result))

            response, replayed = await self._uow.once(scope, key, request, response_type, work)
            return StoredAnswer(response.SerializeToString(), replayed)

        outcome = await self._coalescer.apply(batch_item(kind, key, request), alone)
        if outcome.replayed:
            await context.send_initial_metadata(((REPLAYED_METADATA, "true"),))
        return response_type.FromString(outcome.data)

    async def _mutate(
        self,
        context: grpc.aio.ServicerContext,
        scope: str,
        request: Message,
        response_type: type[Message],
        call: Callable[[WalletUnitOfWork, str], Awaitable[MovementResult]],
    ) -> Message:
        key = idempotency_key_var.get() or ""

        async def work(uow: WalletUnitOfWork) -> Message:
            # ``once`` has validated the key before any work runs.
            result = await call(uow, key)
            return response_type(**_result_fields(result))

        response, replayed = await self._uow.once(scope, key, request, response_type, work)
        if replayed:
            await context.send_initial_metadata(((REPLAYED_METADATA, "true"),))
        return response

    # ---- reads ----------------------------------------------------------------------------------

    async def GetWallet(self, request: pb.GetWalletRequest, context: grpc.aio.ServicerContext):
        wallet = await self._service.get_wallet(self._uow, request.seller_id, request.currency)
        return pb.GetWalletResponse(wallet=wallet_to_pb(wallet))

    async def BatchGetWallets(self, request: pb.BatchGetWalletsRequest, context: grpc.aio.ServicerContext):
        if len(request.wallets) > MAX_BATCH_ITEMS:
            raise InvalidArgument(
                "TOO_MANY_ITEMS", f"at most {MAX_BATCH_ITEMS} wallets per call", field="wallets"
            )
        found = await self._service.get_wallets(
            self._uow, [(w.seller_id, w.currency) for w in request.wallets]
        )
        return pb.BatchGetWalletsResponse(wallets=[wallet_to_pb(w) for w in found])

    async def ListWallets(self, request: pb.ListWalletsRequest, context: grpc.aio.ServicerContext):
        page = await self._service.list_wallets(
            self._uow, request.seller_id, request.page_size, request.page_token
        )
        return pb.ListWalletsResponse(
            wallets=[wallet_to_pb(w) for w in page.items], next_page_token=page.next_page_token
        )

    async def ListMovements(self, request: pb.ListMovementsRequest, context: grpc.aio.ServicerContext):
        page = await self._service.list_movements(
            self._uow,
            request.seller_id,
            request.currency,
            request.page_size,
            request.page_token,
            request.reference_id,
            time_window(request, "create_time_from", "create_time_before"),
        )
        return pb.ListMovementsResponse(
            movements=[movement_to_pb(m) for m in page.items], next_page_token=page.next_page_token
        )

    async def GetReservation(self, request: pb.GetReservationRequest, context: grpc.aio.ServicerContext):
        reservation = await self._service.get_reservation(self._uow, request.reservation_id)
        return pb.GetReservationResponse(reservation=reservation_to_pb(reservation))

    # ---- movements --------------------------------------------------------------------------------

    async def Credit(self, request: pb.CreditRequest, context: grpc.aio.ServicerContext):
        if self._coalescer is not None:
            return await self._coalesced(context, MovementKind.CREDIT, request)
        return await self._mutate(
            context,
            "wallet.Credit",
            request,
            pb.CreditResponse,
            lambda uow, key: self._service.credit(
                uow,
                request.seller_id,
                request.amount.amount_minor,
                request.amount.currency,
                reference_from_pb(request.reference),
                key,
            ),
        )

    async def Debit(self, request: pb.DebitRequest, context: grpc.aio.ServicerContext):
        if request.allow_shortfall:
            return await self._debit_up_to(request, context)
        if self._coalescer is not None:
            return await self._coalesced(context, MovementKind.DEBIT, request)
        return await self._mutate(
            context,
            "wallet.Debit",
            request,
            pb.DebitResponse,
            lambda uow, key: self._service.debit(
                uow,
                request.seller_id,
                request.amount.amount_minor,
                request.amount.currency,
                reference_from_pb(request.reference),
                key,
            ),
        )

    async def _debit_up_to(self, request: pb.DebitRequest, context: grpc.aio.ServicerContext):
        """Debit with ``allow_shortfall``: alone (never coalesced), stored under the key like Debit."""
        key = idempotency_key_var.get() or ""

        async def work(uow: WalletUnitOfWork) -> pb.DebitResponse:
            result = await self._service.debit_up_to(
                uow,
                request.seller_id,
                request.amount.amount_minor,
                request.amount.currency,
                reference_from_pb(request.reference),
                key,
            )
            response = pb.DebitResponse(
                wallet=wallet_to_pb(result.wallet),
                shortfall=money_pb2.Money(
                    amount_minor=result.shortfall_minor, currency=request.amount.currency
                ),
            )
            if result.movement is not None:
                response.movement.CopyFrom(movement_to_pb(result.movement))
            return response

        response, replayed = await self._uow.once(DEBIT_SCOPE, key, request, pb.DebitResponse, work)
        if replayed:
            await context.send_initial_metadata(((REPLAYED_METADATA, "true"),))
        return response

    async def Reserve(self, request: pb.ReserveRequest, context: grpc.aio.ServicerContext):
        return await self._mutate(
            context,
            RESERVE_SCOPE,
            request,
            pb.ReserveResponse,
            lambda uow, key: self._service.reserve(
                uow,
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
            lambda uow, key: self._service.release(
                uow,
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
            CAPTURE_SCOPE,
            request,
            pb.CaptureReservationResponse,
            lambda uow, key: self._service.capture(
                uow,
                request.reservation_id,
                _optional_amount(request),
                reference_from_pb(request.reference),
                key,
            ),
        )

    async def ApplyBatch(self, request: pb.ApplyBatchRequest, context: grpc.aio.ServicerContext):
        # No call-level key: every item has its own, and a retried batch replays item by item.
        if len(request.items) > MAX_BATCH_ITEMS:
            raise InvalidArgument(
                "TOO_MANY_ITEMS", f"at most {MAX_BATCH_ITEMS} items per call", field="items"
            )
        items: list[BatchItem | DomainError] = []
        kinds: list[str | None] = []
        seen: set[str] = set()
        for i, item in enumerate(request.items):
            operation = item.WhichOneof("operation")
            kinds.append(operation)
            try:
                key = _item_key(i, item.idempotency_key)
                if key in seen:
                    raise InvalidArgument(
                        "DUPLICATE_ITEM_KEY",
                        f"item {i} repeats the idempotency key of an earlier item",
                        field=f"items[{i}].idempotency_key",
                    )
                seen.add(key)
                if operation is None:
                    raise InvalidArgument(
                        "OPERATION_MISSING",
                        f"item {i} has no operation (credit, debit, reserve or capture)",
                        field=f"items[{i}].operation",
                    )
                if operation == "debit" and item.debit.allow_shortfall:
                    # A batch answers each item by refusal or success; a partial debit is a single call.
                    raise InvalidArgument(
                        "SHORTFALL_NOT_IN_BATCH",
                        f"item {i}: allow_shortfall is only accepted by Debit",
                        field=f"items[{i}].debit.allow_shortfall",
                    )
            except DomainError as err:
                items.append(err)
                continue
            items.append(batch_item(_BATCH_KINDS[operation][0], key, getattr(item, operation)))
        outcomes = await self._service.apply_batch(self._uow, items) if items else []
        results: list[pb.ApplyBatchResult] = []
        for operation, outcome in zip(kinds, outcomes, strict=True):
            if isinstance(outcome, DomainError):
                results.append(pb.ApplyBatchResult(error=_item_error(outcome)))
                continue
            assert operation is not None  # an item without an operation was refused above
            response_type = _BATCH_KINDS[operation][2]
            result = pb.ApplyBatchResult(replayed=outcome.replayed)
            getattr(result, operation).CopyFrom(response_type.FromString(outcome.data))
            results.append(result)
        return pb.ApplyBatchResponse(results=results)


def _item_key(index: int, key: str) -> str:
    """An item's key, refused like the single RPCs' metadata key but naming the item's field."""
    try:
        return validate_key(key)
    except InvalidArgument as err:
        raise InvalidArgument(err.reason, err.message, field=f"items[{index}].idempotency_key") from None


def _optional_amount(request: pb.ReleaseRequest | pb.CaptureReservationRequest) -> tuple[int, str] | None:
    if not request.HasField("amount"):
        return None
    return request.amount.amount_minor, request.amount.currency
