import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ReconciliationRunState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RECONCILIATION_RUN_STATE_UNSPECIFIED: _ClassVar[ReconciliationRunState]
    RECONCILIATION_RUN_STATE_RUNNING: _ClassVar[ReconciliationRunState]
    RECONCILIATION_RUN_STATE_SUCCEEDED: _ClassVar[ReconciliationRunState]
    RECONCILIATION_RUN_STATE_FAILED: _ClassVar[ReconciliationRunState]

class ReconciliationRunKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RECONCILIATION_RUN_KIND_UNSPECIFIED: _ClassVar[ReconciliationRunKind]
    RECONCILIATION_RUN_KIND_SETTLEMENT_FILE: _ClassVar[ReconciliationRunKind]
    RECONCILIATION_RUN_KIND_WALLET_LEDGER: _ClassVar[ReconciliationRunKind]

class WalletLedgerMismatchKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    WALLET_LEDGER_MISMATCH_KIND_UNSPECIFIED: _ClassVar[WalletLedgerMismatchKind]
    WALLET_LEDGER_MISMATCH_KIND_AMOUNT_DIFFERS: _ClassVar[WalletLedgerMismatchKind]
    WALLET_LEDGER_MISMATCH_KIND_ACCOUNT_MISSING: _ClassVar[WalletLedgerMismatchKind]
    WALLET_LEDGER_MISMATCH_KIND_WALLET_MISSING: _ClassVar[WalletLedgerMismatchKind]
    WALLET_LEDGER_MISMATCH_KIND_CURRENCY_DIFFERS: _ClassVar[WalletLedgerMismatchKind]
RECONCILIATION_RUN_STATE_UNSPECIFIED: ReconciliationRunState
RECONCILIATION_RUN_STATE_RUNNING: ReconciliationRunState
RECONCILIATION_RUN_STATE_SUCCEEDED: ReconciliationRunState
RECONCILIATION_RUN_STATE_FAILED: ReconciliationRunState
RECONCILIATION_RUN_KIND_UNSPECIFIED: ReconciliationRunKind
RECONCILIATION_RUN_KIND_SETTLEMENT_FILE: ReconciliationRunKind
RECONCILIATION_RUN_KIND_WALLET_LEDGER: ReconciliationRunKind
WALLET_LEDGER_MISMATCH_KIND_UNSPECIFIED: WalletLedgerMismatchKind
WALLET_LEDGER_MISMATCH_KIND_AMOUNT_DIFFERS: WalletLedgerMismatchKind
WALLET_LEDGER_MISMATCH_KIND_ACCOUNT_MISSING: WalletLedgerMismatchKind
WALLET_LEDGER_MISMATCH_KIND_WALLET_MISSING: WalletLedgerMismatchKind
WALLET_LEDGER_MISMATCH_KIND_CURRENCY_DIFFERS: WalletLedgerMismatchKind

class ReconciliationRun(_message.Message):
    __slots__ = ("run_id", "state", "interval_start_time", "interval_end_time", "create_time", "kind", "finish_time", "ok", "wallets_checked", "accounts_checked", "mismatch_count", "failure_reason")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    INTERVAL_START_TIME_FIELD_NUMBER: _ClassVar[int]
    INTERVAL_END_TIME_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    FINISH_TIME_FIELD_NUMBER: _ClassVar[int]
    OK_FIELD_NUMBER: _ClassVar[int]
    WALLETS_CHECKED_FIELD_NUMBER: _ClassVar[int]
    ACCOUNTS_CHECKED_FIELD_NUMBER: _ClassVar[int]
    MISMATCH_COUNT_FIELD_NUMBER: _ClassVar[int]
    FAILURE_REASON_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    state: ReconciliationRunState
    interval_start_time: _timestamp_pb2.Timestamp
    interval_end_time: _timestamp_pb2.Timestamp
    create_time: _timestamp_pb2.Timestamp
    kind: ReconciliationRunKind
    finish_time: _timestamp_pb2.Timestamp
    ok: bool
    wallets_checked: int
    accounts_checked: int
    mismatch_count: int
    failure_reason: str
    def __init__(self, run_id: _Optional[str] = ..., state: _Optional[_Union[ReconciliationRunState, str]] = ..., interval_start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., interval_end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., kind: _Optional[_Union[ReconciliationRunKind, str]] = ..., finish_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., ok: _Optional[bool] = ..., wallets_checked: _Optional[int] = ..., accounts_checked: _Optional[int] = ..., mismatch_count: _Optional[int] = ..., failure_reason: _Optional[str] = ...) -> None: ...

class ListReconciliationRunsRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListReconciliationRunsResponse(_message.Message):
    __slots__ = ("runs", "next_page_token")
    RUNS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    runs: _containers.RepeatedCompositeFieldContainer[ReconciliationRun]
    next_page_token: str
    def __init__(self, runs: _Optional[_Iterable[_Union[ReconciliationRun, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class WalletLedgerMismatch(_message.Message):
    __slots__ = ("seller_id", "currency", "kind", "wallet_minor", "ledger_minor")
    SELLER_ID_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    WALLET_MINOR_FIELD_NUMBER: _ClassVar[int]
    LEDGER_MINOR_FIELD_NUMBER: _ClassVar[int]
    seller_id: str
    currency: str
    kind: WalletLedgerMismatchKind
    wallet_minor: int
    ledger_minor: int
    def __init__(self, seller_id: _Optional[str] = ..., currency: _Optional[str] = ..., kind: _Optional[_Union[WalletLedgerMismatchKind, str]] = ..., wallet_minor: _Optional[int] = ..., ledger_minor: _Optional[int] = ...) -> None: ...

class CompareWalletsWithLedgerRequest(_message.Message):
    __slots__ = ("seller_id",)
    SELLER_ID_FIELD_NUMBER: _ClassVar[int]
    seller_id: str
    def __init__(self, seller_id: _Optional[str] = ...) -> None: ...

class CompareWalletsWithLedgerResponse(_message.Message):
    __slots__ = ("ok", "wallets_checked", "accounts_checked", "mismatches", "run_id")
    OK_FIELD_NUMBER: _ClassVar[int]
    WALLETS_CHECKED_FIELD_NUMBER: _ClassVar[int]
    ACCOUNTS_CHECKED_FIELD_NUMBER: _ClassVar[int]
    MISMATCHES_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    ok: bool
    wallets_checked: int
    accounts_checked: int
    mismatches: _containers.RepeatedCompositeFieldContainer[WalletLedgerMismatch]
    run_id: str
    def __init__(self, ok: _Optional[bool] = ..., wallets_checked: _Optional[int] = ..., accounts_checked: _Optional[int] = ..., mismatches: _Optional[_Iterable[_Union[WalletLedgerMismatch, _Mapping]]] = ..., run_id: _Optional[str] = ...) -> None: ...
