import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PaymentOrderState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PAYMENT_ORDER_STATE_UNSPECIFIED: _ClassVar[PaymentOrderState]
    PAYMENT_ORDER_STATE_NOT_STARTED: _ClassVar[PaymentOrderState]
    PAYMENT_ORDER_STATE_EXECUTING: _ClassVar[PaymentOrderState]
    PAYMENT_ORDER_STATE_PENDING: _ClassVar[PaymentOrderState]
    PAYMENT_ORDER_STATE_SUCCESS: _ClassVar[PaymentOrderState]
    PAYMENT_ORDER_STATE_FAILED: _ClassVar[PaymentOrderState]
    PAYMENT_ORDER_STATE_UNKNOWN: _ClassVar[PaymentOrderState]
    PAYMENT_ORDER_STATE_PARTIALLY_REFUNDED: _ClassVar[PaymentOrderState]
    PAYMENT_ORDER_STATE_REFUNDED: _ClassVar[PaymentOrderState]
PAYMENT_ORDER_STATE_UNSPECIFIED: PaymentOrderState
PAYMENT_ORDER_STATE_NOT_STARTED: PaymentOrderState
PAYMENT_ORDER_STATE_EXECUTING: PaymentOrderState
PAYMENT_ORDER_STATE_PENDING: PaymentOrderState
PAYMENT_ORDER_STATE_SUCCESS: PaymentOrderState
PAYMENT_ORDER_STATE_FAILED: PaymentOrderState
PAYMENT_ORDER_STATE_UNKNOWN: PaymentOrderState
PAYMENT_ORDER_STATE_PARTIALLY_REFUNDED: PaymentOrderState
PAYMENT_ORDER_STATE_REFUNDED: PaymentOrderState

class PaymentOrder(_message.Message):
    __slots__ = ("payment_order_id", "checkout_id", "seller_account", "amount_minor", "currency", "state", "create_time", "update_time")
    PAYMENT_ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    CHECKOUT_ID_FIELD_NUMBER: _ClassVar[int]
    SELLER_ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_MINOR_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    payment_order_id: str
    checkout_id: str
    seller_account: str
    amount_minor: int
    currency: str
    state: PaymentOrderState
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, payment_order_id: _Optional[str] = ..., checkout_id: _Optional[str] = ..., seller_account: _Optional[str] = ..., amount_minor: _Optional[int] = ..., currency: _Optional[str] = ..., state: _Optional[_Union[PaymentOrderState, str]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GetPaymentOrderRequest(_message.Message):
    __slots__ = ("payment_order_id",)
    PAYMENT_ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    payment_order_id: str
    def __init__(self, payment_order_id: _Optional[str] = ...) -> None: ...

class GetPaymentOrderResponse(_message.Message):
    __slots__ = ("payment_order",)
    PAYMENT_ORDER_FIELD_NUMBER: _ClassVar[int]
    payment_order: PaymentOrder
    def __init__(self, payment_order: _Optional[_Union[PaymentOrder, _Mapping]] = ...) -> None: ...
