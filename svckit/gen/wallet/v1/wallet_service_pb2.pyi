import datetime

from svckit.gen.common.v1 import money_pb2 as _money_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ReferenceKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REFERENCE_KIND_UNSPECIFIED: _ClassVar[ReferenceKind]
    REFERENCE_KIND_PAYMENT_ORDER: _ClassVar[ReferenceKind]
    REFERENCE_KIND_REFUND: _ClassVar[ReferenceKind]
    REFERENCE_KIND_PAYOUT: _ClassVar[ReferenceKind]
    REFERENCE_KIND_ADJUSTMENT: _ClassVar[ReferenceKind]

class MovementKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MOVEMENT_KIND_UNSPECIFIED: _ClassVar[MovementKind]
    MOVEMENT_KIND_CREDIT: _ClassVar[MovementKind]
    MOVEMENT_KIND_DEBIT: _ClassVar[MovementKind]
    MOVEMENT_KIND_RESERVE: _ClassVar[MovementKind]
    MOVEMENT_KIND_RELEASE: _ClassVar[MovementKind]
    MOVEMENT_KIND_CAPTURE: _ClassVar[MovementKind]

class ReservationState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RESERVATION_STATE_UNSPECIFIED: _ClassVar[ReservationState]
    RESERVATION_STATE_OPEN: _ClassVar[ReservationState]
    RESERVATION_STATE_PARTIALLY_SETTLED: _ClassVar[ReservationState]
    RESERVATION_STATE_CLOSED: _ClassVar[ReservationState]
REFERENCE_KIND_UNSPECIFIED: ReferenceKind
REFERENCE_KIND_PAYMENT_ORDER: ReferenceKind
REFERENCE_KIND_REFUND: ReferenceKind
REFERENCE_KIND_PAYOUT: ReferenceKind
REFERENCE_KIND_ADJUSTMENT: ReferenceKind
MOVEMENT_KIND_UNSPECIFIED: MovementKind
MOVEMENT_KIND_CREDIT: MovementKind
MOVEMENT_KIND_DEBIT: MovementKind
MOVEMENT_KIND_RESERVE: MovementKind
MOVEMENT_KIND_RELEASE: MovementKind
MOVEMENT_KIND_CAPTURE: MovementKind
RESERVATION_STATE_UNSPECIFIED: ReservationState
RESERVATION_STATE_OPEN: ReservationState
RESERVATION_STATE_PARTIALLY_SETTLED: ReservationState
RESERVATION_STATE_CLOSED: ReservationState

class Reference(_message.Message):
    __slots__ = ("kind", "id")
    KIND_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    kind: ReferenceKind
    id: str
    def __init__(self, kind: _Optional[_Union[ReferenceKind, str]] = ..., id: _Optional[str] = ...) -> None: ...

class Wallet(_message.Message):
    __slots__ = ("seller_id", "available", "reserved", "update_time")
    SELLER_ID_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    RESERVED_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    seller_id: str
    available: _money_pb2.Money
    reserved: _money_pb2.Money
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, seller_id: _Optional[str] = ..., available: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., reserved: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Movement(_message.Message):
    __slots__ = ("movement_id", "seller_id", "kind", "amount", "available_after", "reserved_after", "reference", "reservation_id", "idempotency_key", "create_time")
    MOVEMENT_ID_FIELD_NUMBER: _ClassVar[int]
    SELLER_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_AFTER_FIELD_NUMBER: _ClassVar[int]
    RESERVED_AFTER_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_FIELD_NUMBER: _ClassVar[int]
    RESERVATION_ID_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    movement_id: str
    seller_id: str
    kind: MovementKind
    amount: _money_pb2.Money
    available_after: _money_pb2.Money
    reserved_after: _money_pb2.Money
    reference: Reference
    reservation_id: str
    idempotency_key: str
    create_time: _timestamp_pb2.Timestamp
    def __init__(self, movement_id: _Optional[str] = ..., seller_id: _Optional[str] = ..., kind: _Optional[_Union[MovementKind, str]] = ..., amount: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., available_after: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., reserved_after: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., reference: _Optional[_Union[Reference, _Mapping]] = ..., reservation_id: _Optional[str] = ..., idempotency_key: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Reservation(_message.Message):
    __slots__ = ("reservation_id", "seller_id", "state", "amount", "released", "captured", "remaining", "reference", "create_time", "update_time")
    RESERVATION_ID_FIELD_NUMBER: _ClassVar[int]
    SELLER_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    RELEASED_FIELD_NUMBER: _ClassVar[int]
    CAPTURED_FIELD_NUMBER: _ClassVar[int]
    REMAINING_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    reservation_id: str
    seller_id: str
    state: ReservationState
    amount: _money_pb2.Money
    released: _money_pb2.Money
    captured: _money_pb2.Money
    remaining: _money_pb2.Money
    reference: Reference
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, reservation_id: _Optional[str] = ..., seller_id: _Optional[str] = ..., state: _Optional[_Union[ReservationState, str]] = ..., amount: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., released: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., captured: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., remaining: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., reference: _Optional[_Union[Reference, _Mapping]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GetWalletRequest(_message.Message):
    __slots__ = ("seller_id", "currency")
    SELLER_ID_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    seller_id: str
    currency: str
    def __init__(self, seller_id: _Optional[str] = ..., currency: _Optional[str] = ...) -> None: ...

class GetWalletResponse(_message.Message):
    __slots__ = ("wallet",)
    WALLET_FIELD_NUMBER: _ClassVar[int]
    wallet: Wallet
    def __init__(self, wallet: _Optional[_Union[Wallet, _Mapping]] = ...) -> None: ...

class BatchGetWalletsRequest(_message.Message):
    __slots__ = ("wallets",)
    WALLETS_FIELD_NUMBER: _ClassVar[int]
    wallets: _containers.RepeatedCompositeFieldContainer[GetWalletRequest]
    def __init__(self, wallets: _Optional[_Iterable[_Union[GetWalletRequest, _Mapping]]] = ...) -> None: ...

class BatchGetWalletsResponse(_message.Message):
    __slots__ = ("wallets",)
    WALLETS_FIELD_NUMBER: _ClassVar[int]
    wallets: _containers.RepeatedCompositeFieldContainer[Wallet]
    def __init__(self, wallets: _Optional[_Iterable[_Union[Wallet, _Mapping]]] = ...) -> None: ...

class ListWalletsRequest(_message.Message):
    __slots__ = ("seller_id", "page_size", "page_token")
    SELLER_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    seller_id: str
    page_size: int
    page_token: str
    def __init__(self, seller_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListWalletsResponse(_message.Message):
    __slots__ = ("wallets", "next_page_token")
    WALLETS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    wallets: _containers.RepeatedCompositeFieldContainer[Wallet]
    next_page_token: str
    def __init__(self, wallets: _Optional[_Iterable[_Union[Wallet, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ListMovementsRequest(_message.Message):
    __slots__ = ("seller_id", "currency", "page_size", "page_token", "reference_id", "create_time_from", "create_time_before")
    SELLER_ID_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_ID_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FROM_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_BEFORE_FIELD_NUMBER: _ClassVar[int]
    seller_id: str
    currency: str
    page_size: int
    page_token: str
    reference_id: str
    create_time_from: _timestamp_pb2.Timestamp
    create_time_before: _timestamp_pb2.Timestamp
    def __init__(self, seller_id: _Optional[str] = ..., currency: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., reference_id: _Optional[str] = ..., create_time_from: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., create_time_before: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListMovementsResponse(_message.Message):
    __slots__ = ("movements", "next_page_token")
    MOVEMENTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    movements: _containers.RepeatedCompositeFieldContainer[Movement]
    next_page_token: str
    def __init__(self, movements: _Optional[_Iterable[_Union[Movement, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class CreditRequest(_message.Message):
    __slots__ = ("seller_id", "amount", "reference")
    SELLER_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_FIELD_NUMBER: _ClassVar[int]
    seller_id: str
    amount: _money_pb2.Money
    reference: Reference
    def __init__(self, seller_id: _Optional[str] = ..., amount: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., reference: _Optional[_Union[Reference, _Mapping]] = ...) -> None: ...

class CreditResponse(_message.Message):
    __slots__ = ("movement", "wallet")
    MOVEMENT_FIELD_NUMBER: _ClassVar[int]
    WALLET_FIELD_NUMBER: _ClassVar[int]
    movement: Movement
    wallet: Wallet
    def __init__(self, movement: _Optional[_Union[Movement, _Mapping]] = ..., wallet: _Optional[_Union[Wallet, _Mapping]] = ...) -> None: ...

class DebitRequest(_message.Message):
    __slots__ = ("seller_id", "amount", "reference", "allow_shortfall")
    SELLER_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_FIELD_NUMBER: _ClassVar[int]
    ALLOW_SHORTFALL_FIELD_NUMBER: _ClassVar[int]
    seller_id: str
    amount: _money_pb2.Money
    reference: Reference
    allow_shortfall: bool
    def __init__(self, seller_id: _Optional[str] = ..., amount: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., reference: _Optional[_Union[Reference, _Mapping]] = ..., allow_shortfall: _Optional[bool] = ...) -> None: ...

class DebitResponse(_message.Message):
    __slots__ = ("movement", "wallet", "shortfall")
    MOVEMENT_FIELD_NUMBER: _ClassVar[int]
    WALLET_FIELD_NUMBER: _ClassVar[int]
    SHORTFALL_FIELD_NUMBER: _ClassVar[int]
    movement: Movement
    wallet: Wallet
    shortfall: _money_pb2.Money
    def __init__(self, movement: _Optional[_Union[Movement, _Mapping]] = ..., wallet: _Optional[_Union[Wallet, _Mapping]] = ..., shortfall: _Optional[_Union[_money_pb2.Money, _Mapping]] = ...) -> None: ...

class ReserveRequest(_message.Message):
    __slots__ = ("seller_id", "amount", "reference")
    SELLER_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_FIELD_NUMBER: _ClassVar[int]
    seller_id: str
    amount: _money_pb2.Money
    reference: Reference
    def __init__(self, seller_id: _Optional[str] = ..., amount: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., reference: _Optional[_Union[Reference, _Mapping]] = ...) -> None: ...

class ReserveResponse(_message.Message):
    __slots__ = ("reservation", "movement", "wallet")
    RESERVATION_FIELD_NUMBER: _ClassVar[int]
    MOVEMENT_FIELD_NUMBER: _ClassVar[int]
    WALLET_FIELD_NUMBER: _ClassVar[int]
    reservation: Reservation
    movement: Movement
    wallet: Wallet
    def __init__(self, reservation: _Optional[_Union[Reservation, _Mapping]] = ..., movement: _Optional[_Union[Movement, _Mapping]] = ..., wallet: _Optional[_Union[Wallet, _Mapping]] = ...) -> None: ...

class ReleaseRequest(_message.Message):
    __slots__ = ("reservation_id", "amount", "reference")
    RESERVATION_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_FIELD_NUMBER: _ClassVar[int]
    reservation_id: str
    amount: _money_pb2.Money
    reference: Reference
    def __init__(self, reservation_id: _Optional[str] = ..., amount: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., reference: _Optional[_Union[Reference, _Mapping]] = ...) -> None: ...

class ReleaseResponse(_message.Message):
    __slots__ = ("reservation", "movement", "wallet")
    RESERVATION_FIELD_NUMBER: _ClassVar[int]
    MOVEMENT_FIELD_NUMBER: _ClassVar[int]
    WALLET_FIELD_NUMBER: _ClassVar[int]
    reservation: Reservation
    movement: Movement
    wallet: Wallet
    def __init__(self, reservation: _Optional[_Union[Reservation, _Mapping]] = ..., movement: _Optional[_Union[Movement, _Mapping]] = ..., wallet: _Optional[_Union[Wallet, _Mapping]] = ...) -> None: ...

class CaptureReservationRequest(_message.Message):
    __slots__ = ("reservation_id", "amount", "reference")
    RESERVATION_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_FIELD_NUMBER: _ClassVar[int]
    reservation_id: str
    amount: _money_pb2.Money
    reference: Reference
    def __init__(self, reservation_id: _Optional[str] = ..., amount: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., reference: _Optional[_Union[Reference, _Mapping]] = ...) -> None: ...

class CaptureReservationResponse(_message.Message):
    __slots__ = ("reservation", "movement", "wallet")
    RESERVATION_FIELD_NUMBER: _ClassVar[int]
    MOVEMENT_FIELD_NUMBER: _ClassVar[int]
    WALLET_FIELD_NUMBER: _ClassVar[int]
    reservation: Reservation
    movement: Movement
    wallet: Wallet
    def __init__(self, reservation: _Optional[_Union[Reservation, _Mapping]] = ..., movement: _Optional[_Union[Movement, _Mapping]] = ..., wallet: _Optional[_Union[Wallet, _Mapping]] = ...) -> None: ...

class GetReservationRequest(_message.Message):
    __slots__ = ("reservation_id",)
    RESERVATION_ID_FIELD_NUMBER: _ClassVar[int]
    reservation_id: str
    def __init__(self, reservation_id: _Optional[str] = ...) -> None: ...

class GetReservationResponse(_message.Message):
    __slots__ = ("reservation",)
    RESERVATION_FIELD_NUMBER: _ClassVar[int]
    reservation: Reservation
    def __init__(self, reservation: _Optional[_Union[Reservation, _Mapping]] = ...) -> None: ...

class ApplyBatchItem(_message.Message):
    __slots__ = ("idempotency_key", "credit", "debit", "reserve", "capture")
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    CREDIT_FIELD_NUMBER: _ClassVar[int]
    DEBIT_FIELD_NUMBER: _ClassVar[int]
    RESERVE_FIELD_NUMBER: _ClassVar[int]
    CAPTURE_FIELD_NUMBER: _ClassVar[int]
    idempotency_key: str
    credit: CreditRequest
    debit: DebitRequest
    reserve: ReserveRequest
    capture: CaptureReservationRequest
    def __init__(self, idempotency_key: _Optional[str] = ..., credit: _Optional[_Union[CreditRequest, _Mapping]] = ..., debit: _Optional[_Union[DebitRequest, _Mapping]] = ..., reserve: _Optional[_Union[ReserveRequest, _Mapping]] = ..., capture: _Optional[_Union[CaptureReservationRequest, _Mapping]] = ...) -> None: ...

class ApplyBatchRequest(_message.Message):
    __slots__ = ("items",)
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[ApplyBatchItem]
    def __init__(self, items: _Optional[_Iterable[_Union[ApplyBatchItem, _Mapping]]] = ...) -> None: ...

class ItemError(_message.Message):
    __slots__ = ("reason", "message", "code")
    REASON_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    reason: str
    message: str
    code: str
    def __init__(self, reason: _Optional[str] = ..., message: _Optional[str] = ..., code: _Optional[str] = ...) -> None: ...

class ApplyBatchResult(_message.Message):
    __slots__ = ("credit", "debit", "error", "reserve", "capture", "replayed")
    CREDIT_FIELD_NUMBER: _ClassVar[int]
    DEBIT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    RESERVE_FIELD_NUMBER: _ClassVar[int]
    CAPTURE_FIELD_NUMBER: _ClassVar[int]
    REPLAYED_FIELD_NUMBER: _ClassVar[int]
    credit: CreditResponse
    debit: DebitResponse
    error: ItemError
    reserve: ReserveResponse
    capture: CaptureReservationResponse
    replayed: bool
    def __init__(self, credit: _Optional[_Union[CreditResponse, _Mapping]] = ..., debit: _Optional[_Union[DebitResponse, _Mapping]] = ..., error: _Optional[_Union[ItemError, _Mapping]] = ..., reserve: _Optional[_Union[ReserveResponse, _Mapping]] = ..., capture: _Optional[_Union[CaptureReservationResponse, _Mapping]] = ..., replayed: _Optional[bool] = ...) -> None: ...

class ApplyBatchResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[ApplyBatchResult]
    def __init__(self, results: _Optional[_Iterable[_Union[ApplyBatchResult, _Mapping]]] = ...) -> None: ...
