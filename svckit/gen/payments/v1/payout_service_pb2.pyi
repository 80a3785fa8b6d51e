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

class PayoutSchedule(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PAYOUT_SCHEDULE_UNSPECIFIED: _ClassVar[PayoutSchedule]
    PAYOUT_SCHEDULE_MONTHLY: _ClassVar[PayoutSchedule]
    PAYOUT_SCHEDULE_WEEKLY: _ClassVar[PayoutSchedule]
    PAYOUT_SCHEDULE_MANUAL: _ClassVar[PayoutSchedule]

class SellerState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SELLER_STATE_UNSPECIFIED: _ClassVar[SellerState]
    SELLER_STATE_ACTIVE: _ClassVar[SellerState]
    SELLER_STATE_PAYOUTS_PAUSED: _ClassVar[SellerState]
    SELLER_STATE_BLOCKED: _ClassVar[SellerState]

class SkipReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SKIP_REASON_UNSPECIFIED: _ClassVar[SkipReason]
    SKIP_REASON_BELOW_MINIMUM: _ClassVar[SkipReason]
    SKIP_REASON_PAUSED: _ClassVar[SkipReason]
    SKIP_REASON_BLOCKED: _ClassVar[SkipReason]
    SKIP_REASON_RESERVE: _ClassVar[SkipReason]
    SKIP_REASON_NO_PSP_ACCOUNT: _ClassVar[SkipReason]
    SKIP_REASON_PAYOUTS_NOT_ENABLED: _ClassVar[SkipReason]
    SKIP_REASON_NEGATIVE_BALANCE: _ClassVar[SkipReason]
    SKIP_REASON_ALREADY_PAID: _ClassVar[SkipReason]
    SKIP_REASON_PSP_UNAVAILABLE: _ClassVar[SkipReason]

class PayoutRunState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PAYOUT_RUN_STATE_UNSPECIFIED: _ClassVar[PayoutRunState]
    PAYOUT_RUN_STATE_RUNNING: _ClassVar[PayoutRunState]
    PAYOUT_RUN_STATE_COMPLETED: _ClassVar[PayoutRunState]

class PayoutState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PAYOUT_STATE_UNSPECIFIED: _ClassVar[PayoutState]
    PAYOUT_STATE_CREATED: _ClassVar[PayoutState]
    PAYOUT_STATE_RESERVED: _ClassVar[PayoutState]
    PAYOUT_STATE_TRANSFERRED: _ClassVar[PayoutState]
    PAYOUT_STATE_IN_TRANSIT: _ClassVar[PayoutState]
    PAYOUT_STATE_PAID: _ClassVar[PayoutState]
    PAYOUT_STATE_FAILED: _ClassVar[PayoutState]
    PAYOUT_STATE_CANCELED: _ClassVar[PayoutState]
PAYOUT_SCHEDULE_UNSPECIFIED: PayoutSchedule
PAYOUT_SCHEDULE_MONTHLY: PayoutSchedule
PAYOUT_SCHEDULE_WEEKLY: PayoutSchedule
PAYOUT_SCHEDULE_MANUAL: PayoutSchedule
SELLER_STATE_UNSPECIFIED: SellerState
SELLER_STATE_ACTIVE: SellerState
SELLER_STATE_PAYOUTS_PAUSED: SellerState
SELLER_STATE_BLOCKED: SellerState
SKIP_REASON_UNSPECIFIED: SkipReason
SKIP_REASON_BELOW_MINIMUM: SkipReason
SKIP_REASON_PAUSED: SkipReason
SKIP_REASON_BLOCKED: SkipReason
SKIP_REASON_RESERVE: SkipReason
SKIP_REASON_NO_PSP_ACCOUNT: SkipReason
SKIP_REASON_PAYOUTS_NOT_ENABLED: SkipReason
SKIP_REASON_NEGATIVE_BALANCE: SkipReason
SKIP_REASON_ALREADY_PAID: SkipReason
SKIP_REASON_PSP_UNAVAILABLE: SkipReason
PAYOUT_RUN_STATE_UNSPECIFIED: PayoutRunState
PAYOUT_RUN_STATE_RUNNING: PayoutRunState
PAYOUT_RUN_STATE_COMPLETED: PayoutRunState
PAYOUT_STATE_UNSPECIFIED: PayoutState
PAYOUT_STATE_CREATED: PayoutState
PAYOUT_STATE_RESERVED: PayoutState
PAYOUT_STATE_TRANSFERRED: PayoutState
PAYOUT_STATE_IN_TRANSIT: PayoutState
PAYOUT_STATE_PAID: PayoutState
PAYOUT_STATE_FAILED: PayoutState
PAYOUT_STATE_CANCELED: PayoutState

class Seller(_message.Message):
    __slots__ = ("seller_account", "psp_account", "payout_currency", "schedule", "anchor_day", "minimum_payouts", "reserve_bps", "reserve_days", "state", "state_reason", "create_time", "update_time")
    SELLER_ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    PSP_ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    PAYOUT_CURRENCY_FIELD_NUMBER: _ClassVar[int]
    SCHEDULE_FIELD_NUMBER: _ClassVar[int]
    ANCHOR_DAY_FIELD_NUMBER: _ClassVar[int]
    MINIMUM_PAYOUTS_FIELD_NUMBER: _ClassVar[int]
    RESERVE_BPS_FIELD_NUMBER: _ClassVar[int]
    RESERVE_DAYS_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    STATE_REASON_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    seller_account: str
    psp_account: str
    payout_currency: str
    schedule: PayoutSchedule
    anchor_day: int
    minimum_payouts: _containers.RepeatedCompositeFieldContainer[_money_pb2.Money]
    reserve_bps: int
    reserve_days: int
    state: SellerState
    state_reason: str
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, seller_account: _Optional[str] = ..., psp_account: _Optional[str] = ..., payout_currency: _Optional[str] = ..., schedule: _Optional[_Union[PayoutSchedule, str]] = ..., anchor_day: _Optional[int] = ..., minimum_payouts: _Optional[_Iterable[_Union[_money_pb2.Money, _Mapping]]] = ..., reserve_bps: _Optional[int] = ..., reserve_days: _Optional[int] = ..., state: _Optional[_Union[SellerState, str]] = ..., state_reason: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class RegisterSellerRequest(_message.Message):
    __slots__ = ("seller", "create_psp_account", "email")
    SELLER_FIELD_NUMBER: _ClassVar[int]
    CREATE_PSP_ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    EMAIL_FIELD_NUMBER: _ClassVar[int]
    seller: Seller
    create_psp_account: bool
    email: str
    def __init__(self, seller: _Optional[_Union[Seller, _Mapping]] = ..., create_psp_account: _Optional[bool] = ..., email: _Optional[str] = ...) -> None: ...

class RegisterSellerResponse(_message.Message):
    __slots__ = ("seller",)
    SELLER_FIELD_NUMBER: _ClassVar[int]
    seller: Seller
    def __init__(self, seller: _Optional[_Union[Seller, _Mapping]] = ...) -> None: ...

class UpdateSellerRequest(_message.Message):
    __slots__ = ("seller", "update_fields")
    SELLER_FIELD_NUMBER: _ClassVar[int]
    UPDATE_FIELDS_FIELD_NUMBER: _ClassVar[int]
    seller: Seller
    update_fields: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, seller: _Optional[_Union[Seller, _Mapping]] = ..., update_fields: _Optional[_Iterable[str]] = ...) -> None: ...

class UpdateSellerResponse(_message.Message):
    __slots__ = ("seller",)
    SELLER_FIELD_NUMBER: _ClassVar[int]
    seller: Seller
    def __init__(self, seller: _Optional[_Union[Seller, _Mapping]] = ...) -> None: ...

class GetSellerRequest(_message.Message):
    __slots__ = ("seller_account",)
    SELLER_ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    seller_account: str
    def __init__(self, seller_account: _Optional[str] = ...) -> None: ...

class GetSellerResponse(_message.Message):
    __slots__ = ("seller",)
    SELLER_FIELD_NUMBER: _ClassVar[int]
    seller: Seller
    def __init__(self, seller: _Optional[_Union[Seller, _Mapping]] = ...) -> None: ...

class ListSellersRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "seller_account_prefix", "state")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    SELLER_ACCOUNT_PREFIX_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    seller_account_prefix: str
    state: SellerState
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., seller_account_prefix: _Optional[str] = ..., state: _Optional[_Union[SellerState, str]] = ...) -> None: ...

class ListSellersResponse(_message.Message):
    __slots__ = ("sellers", "next_page_token")
    SELLERS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    sellers: _containers.RepeatedCompositeFieldContainer[Seller]
    next_page_token: str
    def __init__(self, sellers: _Optional[_Iterable[_Union[Seller, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class PauseSellerRequest(_message.Message):
    __slots__ = ("seller_account", "reason")
    SELLER_ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    seller_account: str
    reason: str
    def __init__(self, seller_account: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class PauseSellerResponse(_message.Message):
    __slots__ = ("seller",)
    SELLER_FIELD_NUMBER: _ClassVar[int]
    seller: Seller
    def __init__(self, seller: _Optional[_Union[Seller, _Mapping]] = ...) -> None: ...

class ResumeSellerRequest(_message.Message):
    __slots__ = ("seller_account",)
    SELLER_ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    seller_account: str
    def __init__(self, seller_account: _Optional[str] = ...) -> None: ...

class ResumeSellerResponse(_message.Message):
    __slots__ = ("seller",)
    SELLER_FIELD_NUMBER: _ClassVar[int]
    seller: Seller
    def __init__(self, seller: _Optional[_Union[Seller, _Mapping]] = ...) -> None: ...

class PayoutRunItem(_message.Message):
    __slots__ = ("seller_account", "amount", "skip_reason", "payout_id", "detail", "available", "reserve_held")
    SELLER_ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    SKIP_REASON_FIELD_NUMBER: _ClassVar[int]
    PAYOUT_ID_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    RESERVE_HELD_FIELD_NUMBER: _ClassVar[int]
    seller_account: str
    amount: _money_pb2.Money
    skip_reason: SkipReason
    payout_id: str
    detail: str
    available: _money_pb2.Money
    reserve_held: _money_pb2.Money
    def __init__(self, seller_account: _Optional[str] = ..., amount: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., skip_reason: _Optional[_Union[SkipReason, str]] = ..., payout_id: _Optional[str] = ..., detail: _Optional[str] = ..., available: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., reserve_held: _Optional[_Union[_money_pb2.Money, _Mapping]] = ...) -> None: ...

class PayoutRun(_message.Message):
    __slots__ = ("run_id", "period", "dry_run", "state", "sellers_total", "sellers_done", "payouts_created", "sellers_skipped", "items", "create_time", "finish_time")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    PERIOD_FIELD_NUMBER: _ClassVar[int]
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    SELLERS_TOTAL_FIELD_NUMBER: _ClassVar[int]
    SELLERS_DONE_FIELD_NUMBER: _ClassVar[int]
    PAYOUTS_CREATED_FIELD_NUMBER: _ClassVar[int]
    SELLERS_SKIPPED_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    FINISH_TIME_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    period: str
    dry_run: bool
    state: PayoutRunState
    sellers_total: int
    sellers_done: int
    payouts_created: int
    sellers_skipped: int
    items: _containers.RepeatedCompositeFieldContainer[PayoutRunItem]
    create_time: _timestamp_pb2.Timestamp
    finish_time: _timestamp_pb2.Timestamp
    def __init__(self, run_id: _Optional[str] = ..., period: _Optional[str] = ..., dry_run: _Optional[bool] = ..., state: _Optional[_Union[PayoutRunState, str]] = ..., sellers_total: _Optional[int] = ..., sellers_done: _Optional[int] = ..., payouts_created: _Optional[int] = ..., sellers_skipped: _Optional[int] = ..., items: _Optional[_Iterable[_Union[PayoutRunItem, _Mapping]]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., finish_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class PreviewPayoutRunRequest(_message.Message):
    __slots__ = ("period", "seller_accounts")
    PERIOD_FIELD_NUMBER: _ClassVar[int]
    SELLER_ACCOUNTS_FIELD_NUMBER: _ClassVar[int]
    period: str
    seller_accounts: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, period: _Optional[str] = ..., seller_accounts: _Optional[_Iterable[str]] = ...) -> None: ...

class PreviewPayoutRunResponse(_message.Message):
    __slots__ = ("run",)
    RUN_FIELD_NUMBER: _ClassVar[int]
    run: PayoutRun
    def __init__(self, run: _Optional[_Union[PayoutRun, _Mapping]] = ...) -> None: ...

class StartPayoutRunRequest(_message.Message):
    __slots__ = ("period", "dry_run", "seller_accounts")
    PERIOD_FIELD_NUMBER: _ClassVar[int]
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    SELLER_ACCOUNTS_FIELD_NUMBER: _ClassVar[int]
    period: str
    dry_run: bool
    seller_accounts: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, period: _Optional[str] = ..., dry_run: _Optional[bool] = ..., seller_accounts: _Optional[_Iterable[str]] = ...) -> None: ...

class StartPayoutRunResponse(_message.Message):
    __slots__ = ("run",)
    RUN_FIELD_NUMBER: _ClassVar[int]
    run: PayoutRun
    def __init__(self, run: _Optional[_Union[PayoutRun, _Mapping]] = ...) -> None: ...

class GetPayoutRunRequest(_message.Message):
    __slots__ = ("run_id",)
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    def __init__(self, run_id: _Optional[str] = ...) -> None: ...

class GetPayoutRunResponse(_message.Message):
    __slots__ = ("run",)
    RUN_FIELD_NUMBER: _ClassVar[int]
    run: PayoutRun
    def __init__(self, run: _Optional[_Union[PayoutRun, _Mapping]] = ...) -> None: ...

class ListPayoutRunsRequest(_message.Message):
    __slots__ = ("period", "page_size", "page_token")
    PERIOD_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    period: str
    page_size: int
    page_token: str
    def __init__(self, period: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListPayoutRunsResponse(_message.Message):
    __slots__ = ("runs", "next_page_token")
    RUNS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    runs: _containers.RepeatedCompositeFieldContainer[PayoutRun]
    next_page_token: str
    def __init__(self, runs: _Optional[_Iterable[_Union[PayoutRun, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class PayoutTransition(_message.Message):
    __slots__ = ("from_state", "to_state", "cause", "detail", "create_time")
    FROM_STATE_FIELD_NUMBER: _ClassVar[int]
    TO_STATE_FIELD_NUMBER: _ClassVar[int]
    CAUSE_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    from_state: PayoutState
    to_state: PayoutState
    cause: str
    detail: str
    create_time: _timestamp_pb2.Timestamp
    def __init__(self, from_state: _Optional[_Union[PayoutState, str]] = ..., to_state: _Optional[_Union[PayoutState, str]] = ..., cause: _Optional[str] = ..., detail: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Payout(_message.Message):
    __slots__ = ("payout_id", "run_id", "seller_account", "period", "amount", "state", "psp_account", "psp_transfer_id", "psp_payout_id", "failure_code", "failure_message", "reservation_id", "last_error", "create_time", "update_time")
    PAYOUT_ID_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    SELLER_ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    PERIOD_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    PSP_ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    PSP_TRANSFER_ID_FIELD_NUMBER: _ClassVar[int]
    PSP_PAYOUT_ID_FIELD_NUMBER: _ClassVar[int]
    FAILURE_CODE_FIELD_NUMBER: _ClassVar[int]
    FAILURE_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    RESERVATION_ID_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    payout_id: str
    run_id: str
    seller_account: str
    period: str
    amount: _money_pb2.Money
    state: PayoutState
    psp_account: str
    psp_transfer_id: str
    psp_payout_id: str
    failure_code: str
    failure_message: str
    reservation_id: str
    last_error: str
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, payout_id: _Optional[str] = ..., run_id: _Optional[str] = ..., seller_account: _Optional[str] = ..., period: _Optional[str] = ..., amount: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., state: _Optional[_Union[PayoutState, str]] = ..., psp_account: _Optional[str] = ..., psp_transfer_id: _Optional[str] = ..., psp_payout_id: _Optional[str] = ..., failure_code: _Optional[str] = ..., failure_message: _Optional[str] = ..., reservation_id: _Optional[str] = ..., last_error: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListPayoutsRequest(_message.Message):
    __slots__ = ("seller_account", "period", "state", "page_size", "page_token", "create_time_from", "create_time_before")
    SELLER_ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    PERIOD_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FROM_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_BEFORE_FIELD_NUMBER: _ClassVar[int]
    seller_account: str
    period: str
    state: PayoutState
    page_size: int
    page_token: str
    create_time_from: _timestamp_pb2.Timestamp
    create_time_before: _timestamp_pb2.Timestamp
    def __init__(self, seller_account: _Optional[str] = ..., period: _Optional[str] = ..., state: _Optional[_Union[PayoutState, str]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., create_time_from: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., create_time_before: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListPayoutsResponse(_message.Message):
    __slots__ = ("payouts", "next_page_token")
    PAYOUTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    payouts: _containers.RepeatedCompositeFieldContainer[Payout]
    next_page_token: str
    def __init__(self, payouts: _Optional[_Iterable[_Union[Payout, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetPayoutRequest(_message.Message):
    __slots__ = ("payout_id",)
    PAYOUT_ID_FIELD_NUMBER: _ClassVar[int]
    payout_id: str
    def __init__(self, payout_id: _Optional[str] = ...) -> None: ...

class GetPayoutResponse(_message.Message):
    __slots__ = ("payout", "history")
    PAYOUT_FIELD_NUMBER: _ClassVar[int]
    HISTORY_FIELD_NUMBER: _ClassVar[int]
    payout: Payout
    history: _containers.RepeatedCompositeFieldContainer[PayoutTransition]
    def __init__(self, payout: _Optional[_Union[Payout, _Mapping]] = ..., history: _Optional[_Iterable[_Union[PayoutTransition, _Mapping]]] = ...) -> None: ...

class StatementLine(_message.Message):
    __slots__ = ("kind", "reference", "amount", "gross", "commission", "psp_transfer_id", "psp_payout_id", "post_time")
    KIND_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    GROSS_FIELD_NUMBER: _ClassVar[int]
    COMMISSION_FIELD_NUMBER: _ClassVar[int]
    PSP_TRANSFER_ID_FIELD_NUMBER: _ClassVar[int]
    PSP_PAYOUT_ID_FIELD_NUMBER: _ClassVar[int]
    POST_TIME_FIELD_NUMBER: _ClassVar[int]
    kind: str
    reference: str
    amount: _money_pb2.Money
    gross: _money_pb2.Money
    commission: _money_pb2.Money
    psp_transfer_id: str
    psp_payout_id: str
    post_time: _timestamp_pb2.Timestamp
    def __init__(self, kind: _Optional[str] = ..., reference: _Optional[str] = ..., amount: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., gross: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., commission: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., psp_transfer_id: _Optional[str] = ..., psp_payout_id: _Optional[str] = ..., post_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GetStatementRequest(_message.Message):
    __slots__ = ("seller_account", "period", "currency")
    SELLER_ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    PERIOD_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    seller_account: str
    period: str
    currency: str
    def __init__(self, seller_account: _Optional[str] = ..., period: _Optional[str] = ..., currency: _Optional[str] = ...) -> None: ...

class GetStatementResponse(_message.Message):
    __slots__ = ("seller_account", "period", "opening_balance", "orders_gross", "commission", "refunds", "payouts", "adjustments", "closing_balance", "reserve_held", "lines", "debts_netted")
    SELLER_ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    PERIOD_FIELD_NUMBER: _ClassVar[int]
    OPENING_BALANCE_FIELD_NUMBER: _ClassVar[int]
    ORDERS_GROSS_FIELD_NUMBER: _ClassVar[int]
    COMMISSION_FIELD_NUMBER: _ClassVar[int]
    REFUNDS_FIELD_NUMBER: _ClassVar[int]
    PAYOUTS_FIELD_NUMBER: _ClassVar[int]
    ADJUSTMENTS_FIELD_NUMBER: _ClassVar[int]
    CLOSING_BALANCE_FIELD_NUMBER: _ClassVar[int]
    RESERVE_HELD_FIELD_NUMBER: _ClassVar[int]
    LINES_FIELD_NUMBER: _ClassVar[int]
    DEBTS_NETTED_FIELD_NUMBER: _ClassVar[int]
    seller_account: str
    period: str
    opening_balance: _money_pb2.Money
    orders_gross: _money_pb2.Money
    commission: _money_pb2.Money
    refunds: _money_pb2.Money
    payouts: _money_pb2.Money
    adjustments: _money_pb2.Money
    closing_balance: _money_pb2.Money
    reserve_held: _money_pb2.Money
    lines: _containers.RepeatedCompositeFieldContainer[StatementLine]
    debts_netted: _money_pb2.Money
    def __init__(self, seller_account: _Optional[str] = ..., period: _Optional[str] = ..., opening_balance: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., orders_gross: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., commission: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., refunds: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., payouts: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., adjustments: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., closing_balance: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., reserve_held: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., lines: _Optional[_Iterable[_Union[StatementLine, _Mapping]]] = ..., debts_netted: _Optional[_Union[_money_pb2.Money, _Mapping]] = ...) -> None: ...

class WriteOffSellerDebtRequest(_message.Message):
    __slots__ = ("seller_account", "amount", "reason")
    SELLER_ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    seller_account: str
    amount: _money_pb2.Money
    reason: str
    def __init__(self, seller_account: _Optional[str] = ..., amount: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., reason: _Optional[str] = ...) -> None: ...

class WriteOffSellerDebtResponse(_message.Message):
    __slots__ = ("written_off", "debt_left", "ledger_transaction_id")
    WRITTEN_OFF_FIELD_NUMBER: _ClassVar[int]
    DEBT_LEFT_FIELD_NUMBER: _ClassVar[int]
    LEDGER_TRANSACTION_ID_FIELD_NUMBER: _ClassVar[int]
    written_off: _money_pb2.Money
    debt_left: _money_pb2.Money
    ledger_transaction_id: int
    def __init__(self, written_off: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., debt_left: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., ledger_transaction_id: _Optional[int] = ...) -> None: ...
