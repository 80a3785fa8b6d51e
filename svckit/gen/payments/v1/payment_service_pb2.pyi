import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
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

class PaymentMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PAYMENT_MODE_UNSPECIFIED: _ClassVar[PaymentMode]
    PAYMENT_MODE_HOSTED: _ClassVar[PaymentMode]
    PAYMENT_MODE_DIRECT: _ClassVar[PaymentMode]

class ReviewDecision(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REVIEW_DECISION_UNSPECIFIED: _ClassVar[ReviewDecision]
    REVIEW_DECISION_APPROVE: _ClassVar[ReviewDecision]
    REVIEW_DECISION_DECLINE: _ClassVar[ReviewDecision]

class RefundState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REFUND_STATE_UNSPECIFIED: _ClassVar[RefundState]
    REFUND_STATE_PENDING: _ClassVar[RefundState]
    REFUND_STATE_SUCCEEDED: _ClassVar[RefundState]
    REFUND_STATE_FAILED: _ClassVar[RefundState]
PAYMENT_ORDER_STATE_UNSPECIFIED: PaymentOrderState
PAYMENT_ORDER_STATE_NOT_STARTED: PaymentOrderState
PAYMENT_ORDER_STATE_EXECUTING: PaymentOrderState
PAYMENT_ORDER_STATE_PENDING: PaymentOrderState
PAYMENT_ORDER_STATE_SUCCESS: PaymentOrderState
PAYMENT_ORDER_STATE_FAILED: PaymentOrderState
PAYMENT_ORDER_STATE_UNKNOWN: PaymentOrderState
PAYMENT_ORDER_STATE_PARTIALLY_REFUNDED: PaymentOrderState
PAYMENT_ORDER_STATE_REFUNDED: PaymentOrderState
PAYMENT_MODE_UNSPECIFIED: PaymentMode
PAYMENT_MODE_HOSTED: PaymentMode
PAYMENT_MODE_DIRECT: PaymentMode
REVIEW_DECISION_UNSPECIFIED: ReviewDecision
REVIEW_DECISION_APPROVE: ReviewDecision
REVIEW_DECISION_DECLINE: ReviewDecision
REFUND_STATE_UNSPECIFIED: RefundState
REFUND_STATE_PENDING: RefundState
REFUND_STATE_SUCCEEDED: RefundState
REFUND_STATE_FAILED: RefundState

class BuyerInfo(_message.Message):
    __slots__ = ("buyer_id", "email", "name", "country")
    BUYER_ID_FIELD_NUMBER: _ClassVar[int]
    EMAIL_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    COUNTRY_FIELD_NUMBER: _ClassVar[int]
    buyer_id: str
    email: str
    name: str
    country: str
    def __init__(self, buyer_id: _Optional[str] = ..., email: _Optional[str] = ..., name: _Optional[str] = ..., country: _Optional[str] = ...) -> None: ...

class LineItem(_message.Message):
    __slots__ = ("name", "quantity")
    NAME_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    name: str
    quantity: int
    def __init__(self, name: _Optional[str] = ..., quantity: _Optional[int] = ...) -> None: ...

class PaymentOrderInput(_message.Message):
    __slots__ = ("payment_order_id", "seller_account", "amount_minor", "currency", "line_items")
    PAYMENT_ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    SELLER_ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_MINOR_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    LINE_ITEMS_FIELD_NUMBER: _ClassVar[int]
    payment_order_id: str
    seller_account: str
    amount_minor: int
    currency: str
    line_items: _containers.RepeatedCompositeFieldContainer[LineItem]
    def __init__(self, payment_order_id: _Optional[str] = ..., seller_account: _Optional[str] = ..., amount_minor: _Optional[int] = ..., currency: _Optional[str] = ..., line_items: _Optional[_Iterable[_Union[LineItem, _Mapping]]] = ...) -> None: ...

class PaymentOrder(_message.Message):
    __slots__ = ("payment_order_id", "checkout_id", "seller_account", "amount_minor", "currency", "state", "create_time", "update_time", "psp_reference", "failure_code", "failure_message", "next_action_url", "commission_minor", "refunded_minor", "wallet_updated", "ledger_updated", "line_items")
    PAYMENT_ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    CHECKOUT_ID_FIELD_NUMBER: _ClassVar[int]
    SELLER_ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_MINOR_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    PSP_REFERENCE_FIELD_NUMBER: _ClassVar[int]
    FAILURE_CODE_FIELD_NUMBER: _ClassVar[int]
    FAILURE_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    NEXT_ACTION_URL_FIELD_NUMBER: _ClassVar[int]
    COMMISSION_MINOR_FIELD_NUMBER: _ClassVar[int]
    REFUNDED_MINOR_FIELD_NUMBER: _ClassVar[int]
    WALLET_UPDATED_FIELD_NUMBER: _ClassVar[int]
    LEDGER_UPDATED_FIELD_NUMBER: _ClassVar[int]
    LINE_ITEMS_FIELD_NUMBER: _ClassVar[int]
    payment_order_id: str
    checkout_id: str
    seller_account: str
    amount_minor: int
    currency: str
    state: PaymentOrderState
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    psp_reference: str
    failure_code: str
    failure_message: str
    next_action_url: str
    commission_minor: int
    refunded_minor: int
    wallet_updated: bool
    ledger_updated: bool
    line_items: _containers.RepeatedCompositeFieldContainer[LineItem]
    def __init__(self, payment_order_id: _Optional[str] = ..., checkout_id: _Optional[str] = ..., seller_account: _Optional[str] = ..., amount_minor: _Optional[int] = ..., currency: _Optional[str] = ..., state: _Optional[_Union[PaymentOrderState, str]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., psp_reference: _Optional[str] = ..., failure_code: _Optional[str] = ..., failure_message: _Optional[str] = ..., next_action_url: _Optional[str] = ..., commission_minor: _Optional[int] = ..., refunded_minor: _Optional[int] = ..., wallet_updated: _Optional[bool] = ..., ledger_updated: _Optional[bool] = ..., line_items: _Optional[_Iterable[_Union[LineItem, _Mapping]]] = ...) -> None: ...

class PaymentEvent(_message.Message):
    __slots__ = ("checkout_id", "buyer", "mode", "payment_orders", "hosted_page_url", "create_time", "success_url", "cancel_url", "risk_verdict", "risk_rule", "disputes")
    CHECKOUT_ID_FIELD_NUMBER: _ClassVar[int]
    BUYER_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    PAYMENT_ORDERS_FIELD_NUMBER: _ClassVar[int]
    HOSTED_PAGE_URL_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    SUCCESS_URL_FIELD_NUMBER: _ClassVar[int]
    CANCEL_URL_FIELD_NUMBER: _ClassVar[int]
    RISK_VERDICT_FIELD_NUMBER: _ClassVar[int]
    RISK_RULE_FIELD_NUMBER: _ClassVar[int]
    DISPUTES_FIELD_NUMBER: _ClassVar[int]
    checkout_id: str
    buyer: BuyerInfo
    mode: PaymentMode
    payment_orders: _containers.RepeatedCompositeFieldContainer[PaymentOrder]
    hosted_page_url: str
    create_time: _timestamp_pb2.Timestamp
    success_url: str
    cancel_url: str
    risk_verdict: str
    risk_rule: str
    disputes: _containers.RepeatedCompositeFieldContainer[Dispute]
    def __init__(self, checkout_id: _Optional[str] = ..., buyer: _Optional[_Union[BuyerInfo, _Mapping]] = ..., mode: _Optional[_Union[PaymentMode, str]] = ..., payment_orders: _Optional[_Iterable[_Union[PaymentOrder, _Mapping]]] = ..., hosted_page_url: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., success_url: _Optional[str] = ..., cancel_url: _Optional[str] = ..., risk_verdict: _Optional[str] = ..., risk_rule: _Optional[str] = ..., disputes: _Optional[_Iterable[_Union[Dispute, _Mapping]]] = ...) -> None: ...

class Dispute(_message.Message):
    __slots__ = ("dispute_id", "payment_intent_id", "amount_minor", "currency", "status", "reason", "evidence_due_time", "create_time", "update_time")
    DISPUTE_ID_FIELD_NUMBER: _ClassVar[int]
    PAYMENT_INTENT_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_MINOR_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_DUE_TIME_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    dispute_id: str
    payment_intent_id: str
    amount_minor: int
    currency: str
    status: str
    reason: str
    evidence_due_time: _timestamp_pb2.Timestamp
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, dispute_id: _Optional[str] = ..., payment_intent_id: _Optional[str] = ..., amount_minor: _Optional[int] = ..., currency: _Optional[str] = ..., status: _Optional[str] = ..., reason: _Optional[str] = ..., evidence_due_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class OrderTransition(_message.Message):
    __slots__ = ("from_state", "to_state", "cause", "detail", "create_time")
    FROM_STATE_FIELD_NUMBER: _ClassVar[int]
    TO_STATE_FIELD_NUMBER: _ClassVar[int]
    CAUSE_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    from_state: PaymentOrderState
    to_state: PaymentOrderState
    cause: str
    detail: str
    create_time: _timestamp_pb2.Timestamp
    def __init__(self, from_state: _Optional[_Union[PaymentOrderState, str]] = ..., to_state: _Optional[_Union[PaymentOrderState, str]] = ..., cause: _Optional[str] = ..., detail: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CreatePaymentRequest(_message.Message):
    __slots__ = ("checkout_id", "buyer", "payment_orders", "success_url", "cancel_url", "payment_method")
    CHECKOUT_ID_FIELD_NUMBER: _ClassVar[int]
    BUYER_FIELD_NUMBER: _ClassVar[int]
    PAYMENT_ORDERS_FIELD_NUMBER: _ClassVar[int]
    SUCCESS_URL_FIELD_NUMBER: _ClassVar[int]
    CANCEL_URL_FIELD_NUMBER: _ClassVar[int]
    PAYMENT_METHOD_FIELD_NUMBER: _ClassVar[int]
    checkout_id: str
    buyer: BuyerInfo
    payment_orders: _containers.RepeatedCompositeFieldContainer[PaymentOrderInput]
    success_url: str
    cancel_url: str
    payment_method: str
    def __init__(self, checkout_id: _Optional[str] = ..., buyer: _Optional[_Union[BuyerInfo, _Mapping]] = ..., payment_orders: _Optional[_Iterable[_Union[PaymentOrderInput, _Mapping]]] = ..., success_url: _Optional[str] = ..., cancel_url: _Optional[str] = ..., payment_method: _Optional[str] = ...) -> None: ...

class CreatePaymentResponse(_message.Message):
    __slots__ = ("payment_event",)
    PAYMENT_EVENT_FIELD_NUMBER: _ClassVar[int]
    payment_event: PaymentEvent
    def __init__(self, payment_event: _Optional[_Union[PaymentEvent, _Mapping]] = ...) -> None: ...

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

class RecheckPaymentOrderRequest(_message.Message):
    __slots__ = ("payment_order_id",)
    PAYMENT_ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    payment_order_id: str
    def __init__(self, payment_order_id: _Optional[str] = ...) -> None: ...

class RecheckPaymentOrderResponse(_message.Message):
    __slots__ = ("payment_order",)
    PAYMENT_ORDER_FIELD_NUMBER: _ClassVar[int]
    payment_order: PaymentOrder
    def __init__(self, payment_order: _Optional[_Union[PaymentOrder, _Mapping]] = ...) -> None: ...

class RedriveSettlementRequest(_message.Message):
    __slots__ = ("payment_order_id",)
    PAYMENT_ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    payment_order_id: str
    def __init__(self, payment_order_id: _Optional[str] = ...) -> None: ...

class RedriveSettlementResponse(_message.Message):
    __slots__ = ("payment_order", "redriven")
    PAYMENT_ORDER_FIELD_NUMBER: _ClassVar[int]
    REDRIVEN_FIELD_NUMBER: _ClassVar[int]
    payment_order: PaymentOrder
    redriven: bool
    def __init__(self, payment_order: _Optional[_Union[PaymentOrder, _Mapping]] = ..., redriven: _Optional[bool] = ...) -> None: ...

class GetCheckoutRequest(_message.Message):
    __slots__ = ("checkout_id",)
    CHECKOUT_ID_FIELD_NUMBER: _ClassVar[int]
    checkout_id: str
    def __init__(self, checkout_id: _Optional[str] = ...) -> None: ...

class GetCheckoutResponse(_message.Message):
    __slots__ = ("payment_event",)
    PAYMENT_EVENT_FIELD_NUMBER: _ClassVar[int]
    payment_event: PaymentEvent
    def __init__(self, payment_event: _Optional[_Union[PaymentEvent, _Mapping]] = ...) -> None: ...

class GetCheckoutByPaymentIntentRequest(_message.Message):
    __slots__ = ("payment_intent_id",)
    PAYMENT_INTENT_ID_FIELD_NUMBER: _ClassVar[int]
    payment_intent_id: str
    def __init__(self, payment_intent_id: _Optional[str] = ...) -> None: ...

class GetCheckoutByPaymentIntentResponse(_message.Message):
    __slots__ = ("payment_event",)
    PAYMENT_EVENT_FIELD_NUMBER: _ClassVar[int]
    payment_event: PaymentEvent
    def __init__(self, payment_event: _Optional[_Union[PaymentEvent, _Mapping]] = ...) -> None: ...

class ListPaymentOrderHistoryRequest(_message.Message):
    __slots__ = ("payment_order_id",)
    PAYMENT_ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    payment_order_id: str
    def __init__(self, payment_order_id: _Optional[str] = ...) -> None: ...

class ListPaymentOrderHistoryResponse(_message.Message):
    __slots__ = ("transitions",)
    TRANSITIONS_FIELD_NUMBER: _ClassVar[int]
    transitions: _containers.RepeatedCompositeFieldContainer[OrderTransition]
    def __init__(self, transitions: _Optional[_Iterable[_Union[OrderTransition, _Mapping]]] = ...) -> None: ...

class ListPaymentOrdersRequest(_message.Message):
    __slots__ = ("checkout_id", "seller_account", "buyer_id", "states", "create_time_from", "create_time_before", "page_size", "page_token")
    CHECKOUT_ID_FIELD_NUMBER: _ClassVar[int]
    SELLER_ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    BUYER_ID_FIELD_NUMBER: _ClassVar[int]
    STATES_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FROM_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_BEFORE_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    checkout_id: str
    seller_account: str
    buyer_id: str
    states: _containers.RepeatedScalarFieldContainer[PaymentOrderState]
    create_time_from: _timestamp_pb2.Timestamp
    create_time_before: _timestamp_pb2.Timestamp
    page_size: int
    page_token: str
    def __init__(self, checkout_id: _Optional[str] = ..., seller_account: _Optional[str] = ..., buyer_id: _Optional[str] = ..., states: _Optional[_Iterable[_Union[PaymentOrderState, str]]] = ..., create_time_from: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., create_time_before: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListPaymentOrdersResponse(_message.Message):
    __slots__ = ("payment_orders", "next_page_token")
    PAYMENT_ORDERS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    payment_orders: _containers.RepeatedCompositeFieldContainer[PaymentOrder]
    next_page_token: str
    def __init__(self, payment_orders: _Optional[_Iterable[_Union[PaymentOrder, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ListRefundsRequest(_message.Message):
    __slots__ = ("payment_order_id", "page_size", "page_token", "create_time_from", "create_time_before", "states", "refund_id")
    PAYMENT_ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FROM_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_BEFORE_FIELD_NUMBER: _ClassVar[int]
    STATES_FIELD_NUMBER: _ClassVar[int]
    REFUND_ID_FIELD_NUMBER: _ClassVar[int]
    payment_order_id: str
    page_size: int
    page_token: str
    create_time_from: _timestamp_pb2.Timestamp
    create_time_before: _timestamp_pb2.Timestamp
    states: _containers.RepeatedScalarFieldContainer[RefundState]
    refund_id: str
    def __init__(self, payment_order_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., create_time_from: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., create_time_before: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., states: _Optional[_Iterable[_Union[RefundState, str]]] = ..., refund_id: _Optional[str] = ...) -> None: ...

class ListRefundsResponse(_message.Message):
    __slots__ = ("refunds", "next_page_token")
    REFUNDS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    refunds: _containers.RepeatedCompositeFieldContainer[Refund]
    next_page_token: str
    def __init__(self, refunds: _Optional[_Iterable[_Union[Refund, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class HandlePspEventRequest(_message.Message):
    __slots__ = ("event_id", "event_type", "payload", "stripe_signature")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    EVENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    STRIPE_SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    event_type: str
    payload: bytes
    stripe_signature: str
    def __init__(self, event_id: _Optional[str] = ..., event_type: _Optional[str] = ..., payload: _Optional[bytes] = ..., stripe_signature: _Optional[str] = ...) -> None: ...

class HandlePspEventResponse(_message.Message):
    __slots__ = ("applied", "payment_order_ids", "accepted")
    APPLIED_FIELD_NUMBER: _ClassVar[int]
    PAYMENT_ORDER_IDS_FIELD_NUMBER: _ClassVar[int]
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    applied: bool
    payment_order_ids: _containers.RepeatedScalarFieldContainer[str]
    accepted: bool
    def __init__(self, applied: _Optional[bool] = ..., payment_order_ids: _Optional[_Iterable[str]] = ..., accepted: _Optional[bool] = ...) -> None: ...

class ReviewPaymentOrderRequest(_message.Message):
    __slots__ = ("payment_order_id", "decision", "reviewer", "note")
    PAYMENT_ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    DECISION_FIELD_NUMBER: _ClassVar[int]
    REVIEWER_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    payment_order_id: str
    decision: ReviewDecision
    reviewer: str
    note: str
    def __init__(self, payment_order_id: _Optional[str] = ..., decision: _Optional[_Union[ReviewDecision, str]] = ..., reviewer: _Optional[str] = ..., note: _Optional[str] = ...) -> None: ...

class ReviewPaymentOrderResponse(_message.Message):
    __slots__ = ("payment_order",)
    PAYMENT_ORDER_FIELD_NUMBER: _ClassVar[int]
    payment_order: PaymentOrder
    def __init__(self, payment_order: _Optional[_Union[PaymentOrder, _Mapping]] = ...) -> None: ...

class Refund(_message.Message):
    __slots__ = ("refund_id", "payment_order_id", "amount_minor", "currency", "state", "psp_reference", "create_time")
    REFUND_ID_FIELD_NUMBER: _ClassVar[int]
    PAYMENT_ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_MINOR_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    PSP_REFERENCE_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    refund_id: str
    payment_order_id: str
    amount_minor: int
    currency: str
    state: RefundState
    psp_reference: str
    create_time: _timestamp_pb2.Timestamp
    def __init__(self, refund_id: _Optional[str] = ..., payment_order_id: _Optional[str] = ..., amount_minor: _Optional[int] = ..., currency: _Optional[str] = ..., state: _Optional[_Union[RefundState, str]] = ..., psp_reference: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CreateRefundRequest(_message.Message):
    __slots__ = ("payment_order_id", "amount_minor", "reason")
    PAYMENT_ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_MINOR_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    payment_order_id: str
    amount_minor: int
    reason: str
    def __init__(self, payment_order_id: _Optional[str] = ..., amount_minor: _Optional[int] = ..., reason: _Optional[str] = ...) -> None: ...

class CreateRefundResponse(_message.Message):
    __slots__ = ("refund", "payment_order")
    REFUND_FIELD_NUMBER: _ClassVar[int]
    PAYMENT_ORDER_FIELD_NUMBER: _ClassVar[int]
    refund: Refund
    payment_order: PaymentOrder
    def __init__(self, refund: _Optional[_Union[Refund, _Mapping]] = ..., payment_order: _Optional[_Union[PaymentOrder, _Mapping]] = ...) -> None: ...

class BatchGetCheckoutOrdersRequest(_message.Message):
    __slots__ = ("checkout_ids",)
    CHECKOUT_IDS_FIELD_NUMBER: _ClassVar[int]
    checkout_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, checkout_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class BatchGetCheckoutOrdersResponse(_message.Message):
    __slots__ = ("payment_orders",)
    PAYMENT_ORDERS_FIELD_NUMBER: _ClassVar[int]
    payment_orders: _containers.RepeatedCompositeFieldContainer[PaymentOrder]
    def __init__(self, payment_orders: _Optional[_Iterable[_Union[PaymentOrder, _Mapping]]] = ...) -> None: ...

class BatchGetCheckoutOrderColumnsRequest(_message.Message):
    __slots__ = ("checkout_ids",)
    CHECKOUT_IDS_FIELD_NUMBER: _ClassVar[int]
    checkout_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, checkout_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class BatchGetCheckoutOrderColumnsResponse(_message.Message):
    __slots__ = ("checkout_ids", "payment_order_ids", "psp_references", "amounts_minor", "currencies", "states", "create_times_unix_micros", "wallet_updated", "ledger_updated")
    CHECKOUT_IDS_FIELD_NUMBER: _ClassVar[int]
    PAYMENT_ORDER_IDS_FIELD_NUMBER: _ClassVar[int]
    PSP_REFERENCES_FIELD_NUMBER: _ClassVar[int]
    AMOUNTS_MINOR_FIELD_NUMBER: _ClassVar[int]
    CURRENCIES_FIELD_NUMBER: _ClassVar[int]
    STATES_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIMES_UNIX_MICROS_FIELD_NUMBER: _ClassVar[int]
    WALLET_UPDATED_FIELD_NUMBER: _ClassVar[int]
    LEDGER_UPDATED_FIELD_NUMBER: _ClassVar[int]
    checkout_ids: _containers.RepeatedScalarFieldContainer[str]
    payment_order_ids: _containers.RepeatedScalarFieldContainer[str]
    psp_references: _containers.RepeatedScalarFieldContainer[str]
    amounts_minor: _containers.RepeatedScalarFieldContainer[int]
    currencies: _containers.RepeatedScalarFieldContainer[str]
    states: _containers.RepeatedScalarFieldContainer[PaymentOrderState]
    create_times_unix_micros: _containers.RepeatedScalarFieldContainer[int]
    wallet_updated: _containers.RepeatedScalarFieldContainer[bool]
    ledger_updated: _containers.RepeatedScalarFieldContainer[bool]
    def __init__(self, checkout_ids: _Optional[_Iterable[str]] = ..., payment_order_ids: _Optional[_Iterable[str]] = ..., psp_references: _Optional[_Iterable[str]] = ..., amounts_minor: _Optional[_Iterable[int]] = ..., currencies: _Optional[_Iterable[str]] = ..., states: _Optional[_Iterable[_Union[PaymentOrderState, str]]] = ..., create_times_unix_micros: _Optional[_Iterable[int]] = ..., wallet_updated: _Optional[_Iterable[bool]] = ..., ledger_updated: _Optional[_Iterable[bool]] = ...) -> None: ...

class GetPaymentStatsRequest(_message.Message):
    __slots__ = ("window_minutes", "bucket_minutes")
    WINDOW_MINUTES_FIELD_NUMBER: _ClassVar[int]
    BUCKET_MINUTES_FIELD_NUMBER: _ClassVar[int]
    window_minutes: int
    bucket_minutes: int
    def __init__(self, window_minutes: _Optional[int] = ..., bucket_minutes: _Optional[int] = ...) -> None: ...

class PaymentStatsBucket(_message.Message):
    __slots__ = ("start_time", "created", "succeeded", "failed")
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    SUCCEEDED_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    start_time: _timestamp_pb2.Timestamp
    created: int
    succeeded: int
    failed: int
    def __init__(self, start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., created: _Optional[int] = ..., succeeded: _Optional[int] = ..., failed: _Optional[int] = ...) -> None: ...

class DeclineCount(_message.Message):
    __slots__ = ("code", "count")
    CODE_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    code: str
    count: int
    def __init__(self, code: _Optional[str] = ..., count: _Optional[int] = ...) -> None: ...

class GetPaymentStatsResponse(_message.Message):
    __slots__ = ("buckets", "declines", "window_start_time")
    BUCKETS_FIELD_NUMBER: _ClassVar[int]
    DECLINES_FIELD_NUMBER: _ClassVar[int]
    WINDOW_START_TIME_FIELD_NUMBER: _ClassVar[int]
    buckets: _containers.RepeatedCompositeFieldContainer[PaymentStatsBucket]
    declines: _containers.RepeatedCompositeFieldContainer[DeclineCount]
    window_start_time: _timestamp_pb2.Timestamp
    def __init__(self, buckets: _Optional[_Iterable[_Union[PaymentStatsBucket, _Mapping]]] = ..., declines: _Optional[_Iterable[_Union[DeclineCount, _Mapping]]] = ..., window_start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
