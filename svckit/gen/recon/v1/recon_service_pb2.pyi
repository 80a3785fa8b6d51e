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
    __slots__ = ("seller_id", "interval_start_time", "interval_end_time")
    SELLER_ID_FIELD_NUMBER: _ClassVar[int]
    INTERVAL_START_TIME_FIELD_NUMBER: _ClassVar[int]
    INTERVAL_END_TIME_FIELD_NUMBER: _ClassVar[int]
    seller_id: str
    interval_start_time: _timestamp_pb2.Timestamp
    interval_end_time: _timestamp_pb2.Timestamp
    def __init__(self, seller_id: _Optional[str] = ..., interval_start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., interval_end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class RecordMismatch(_message.Message):
    __slots__ = ("code", "classification", "our_reference", "currency", "amount_minor", "differences", "mismatch_id")
    CODE_FIELD_NUMBER: _ClassVar[int]
    CLASSIFICATION_FIELD_NUMBER: _ClassVar[int]
    OUR_REFERENCE_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_MINOR_FIELD_NUMBER: _ClassVar[int]
    DIFFERENCES_FIELD_NUMBER: _ClassVar[int]
    MISMATCH_ID_FIELD_NUMBER: _ClassVar[int]
    code: str
    classification: str
    our_reference: str
    currency: str
    amount_minor: int
    differences: _containers.RepeatedCompositeFieldContainer[FieldDifference]
    mismatch_id: str
    def __init__(self, code: _Optional[str] = ..., classification: _Optional[str] = ..., our_reference: _Optional[str] = ..., currency: _Optional[str] = ..., amount_minor: _Optional[int] = ..., differences: _Optional[_Iterable[_Union[FieldDifference, _Mapping]]] = ..., mismatch_id: _Optional[str] = ...) -> None: ...

class CompareWalletsWithLedgerResponse(_message.Message):
    __slots__ = ("ok", "wallets_checked", "accounts_checked", "mismatches", "run_id", "records_checked", "book_items_checked", "record_mismatches", "record_mismatch_count")
    OK_FIELD_NUMBER: _ClassVar[int]
    WALLETS_CHECKED_FIELD_NUMBER: _ClassVar[int]
    ACCOUNTS_CHECKED_FIELD_NUMBER: _ClassVar[int]
    MISMATCHES_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    RECORDS_CHECKED_FIELD_NUMBER: _ClassVar[int]
    BOOK_ITEMS_CHECKED_FIELD_NUMBER: _ClassVar[int]
    RECORD_MISMATCHES_FIELD_NUMBER: _ClassVar[int]
    RECORD_MISMATCH_COUNT_FIELD_NUMBER: _ClassVar[int]
    ok: bool
    wallets_checked: int
    accounts_checked: int
    mismatches: _containers.RepeatedCompositeFieldContainer[WalletLedgerMismatch]
    run_id: str
    records_checked: int
    book_items_checked: int
    record_mismatches: _containers.RepeatedCompositeFieldContainer[RecordMismatch]
    record_mismatch_count: int
    def __init__(self, ok: _Optional[bool] = ..., wallets_checked: _Optional[int] = ..., accounts_checked: _Optional[int] = ..., mismatches: _Optional[_Iterable[_Union[WalletLedgerMismatch, _Mapping]]] = ..., run_id: _Optional[str] = ..., records_checked: _Optional[int] = ..., book_items_checked: _Optional[int] = ..., record_mismatches: _Optional[_Iterable[_Union[RecordMismatch, _Mapping]]] = ..., record_mismatch_count: _Optional[int] = ...) -> None: ...

class StartSettlementRunRequest(_message.Message):
    __slots__ = ("date", "file_content")
    DATE_FIELD_NUMBER: _ClassVar[int]
    FILE_CONTENT_FIELD_NUMBER: _ClassVar[int]
    date: str
    file_content: bytes
    def __init__(self, date: _Optional[str] = ..., file_content: _Optional[bytes] = ...) -> None: ...

class GetSettlementRunRequest(_message.Message):
    __slots__ = ("run_id",)
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    def __init__(self, run_id: _Optional[str] = ...) -> None: ...

class SettlementRowError(_message.Message):
    __slots__ = ("line", "reason", "message")
    LINE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    line: int
    reason: str
    message: str
    def __init__(self, line: _Optional[int] = ..., reason: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class SettlementRunReport(_message.Message):
    __slots__ = ("run_id", "state", "file_sha256", "rows_read", "matched", "booked", "already_counted", "pending", "auto_fixed", "row_error_count", "row_errors", "error", "mismatches_by_code", "open_by_classification", "report_json")
    class MismatchesByCodeEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    class OpenByClassificationEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    FILE_SHA256_FIELD_NUMBER: _ClassVar[int]
    ROWS_READ_FIELD_NUMBER: _ClassVar[int]
    MATCHED_FIELD_NUMBER: _ClassVar[int]
    BOOKED_FIELD_NUMBER: _ClassVar[int]
    ALREADY_COUNTED_FIELD_NUMBER: _ClassVar[int]
    PENDING_FIELD_NUMBER: _ClassVar[int]
    AUTO_FIXED_FIELD_NUMBER: _ClassVar[int]
    ROW_ERROR_COUNT_FIELD_NUMBER: _ClassVar[int]
    ROW_ERRORS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    MISMATCHES_BY_CODE_FIELD_NUMBER: _ClassVar[int]
    OPEN_BY_CLASSIFICATION_FIELD_NUMBER: _ClassVar[int]
    REPORT_JSON_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    state: str
    file_sha256: str
    rows_read: int
    matched: int
    booked: int
    already_counted: int
    pending: int
    auto_fixed: int
    row_error_count: int
    row_errors: _containers.RepeatedCompositeFieldContainer[SettlementRowError]
    error: str
    mismatches_by_code: _containers.ScalarMap[str, int]
    open_by_classification: _containers.ScalarMap[str, int]
    report_json: str
    def __init__(self, run_id: _Optional[str] = ..., state: _Optional[str] = ..., file_sha256: _Optional[str] = ..., rows_read: _Optional[int] = ..., matched: _Optional[int] = ..., booked: _Optional[int] = ..., already_counted: _Optional[int] = ..., pending: _Optional[int] = ..., auto_fixed: _Optional[int] = ..., row_error_count: _Optional[int] = ..., row_errors: _Optional[_Iterable[_Union[SettlementRowError, _Mapping]]] = ..., error: _Optional[str] = ..., mismatches_by_code: _Optional[_Mapping[str, int]] = ..., open_by_classification: _Optional[_Mapping[str, int]] = ..., report_json: _Optional[str] = ...) -> None: ...

class FieldDifference(_message.Message):
    __slots__ = ("field", "ours", "theirs")
    FIELD_FIELD_NUMBER: _ClassVar[int]
    OURS_FIELD_NUMBER: _ClassVar[int]
    THEIRS_FIELD_NUMBER: _ClassVar[int]
    field: str
    ours: str
    theirs: str
    def __init__(self, field: _Optional[str] = ..., ours: _Optional[str] = ..., theirs: _Optional[str] = ...) -> None: ...

class Mismatch(_message.Message):
    __slots__ = ("mismatch_id", "run_id", "code", "classification", "state", "balance_transaction_id", "our_reference", "amount_minor", "currency", "differences", "line", "assignee", "resolution_code", "create_time")
    MISMATCH_ID_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    CLASSIFICATION_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    BALANCE_TRANSACTION_ID_FIELD_NUMBER: _ClassVar[int]
    OUR_REFERENCE_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_MINOR_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    DIFFERENCES_FIELD_NUMBER: _ClassVar[int]
    LINE_FIELD_NUMBER: _ClassVar[int]
    ASSIGNEE_FIELD_NUMBER: _ClassVar[int]
    RESOLUTION_CODE_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    mismatch_id: str
    run_id: str
    code: str
    classification: str
    state: str
    balance_transaction_id: str
    our_reference: str
    amount_minor: int
    currency: str
    differences: _containers.RepeatedCompositeFieldContainer[FieldDifference]
    line: int
    assignee: str
    resolution_code: str
    create_time: _timestamp_pb2.Timestamp
    def __init__(self, mismatch_id: _Optional[str] = ..., run_id: _Optional[str] = ..., code: _Optional[str] = ..., classification: _Optional[str] = ..., state: _Optional[str] = ..., balance_transaction_id: _Optional[str] = ..., our_reference: _Optional[str] = ..., amount_minor: _Optional[int] = ..., currency: _Optional[str] = ..., differences: _Optional[_Iterable[_Union[FieldDifference, _Mapping]]] = ..., line: _Optional[int] = ..., assignee: _Optional[str] = ..., resolution_code: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListMismatchesRequest(_message.Message):
    __slots__ = ("run_id", "code", "classification", "state", "min_amount_minor", "page_size", "page_token")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    CLASSIFICATION_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    MIN_AMOUNT_MINOR_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    code: str
    classification: str
    state: str
    min_amount_minor: int
    page_size: int
    page_token: str
    def __init__(self, run_id: _Optional[str] = ..., code: _Optional[str] = ..., classification: _Optional[str] = ..., state: _Optional[str] = ..., min_amount_minor: _Optional[int] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListMismatchesResponse(_message.Message):
    __slots__ = ("mismatches", "next_page_token")
    MISMATCHES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    mismatches: _containers.RepeatedCompositeFieldContainer[Mismatch]
    next_page_token: str
    def __init__(self, mismatches: _Optional[_Iterable[_Union[Mismatch, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class AssignMismatchRequest(_message.Message):
    __slots__ = ("mismatch_id", "assignee", "actor")
    MISMATCH_ID_FIELD_NUMBER: _ClassVar[int]
    ASSIGNEE_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    mismatch_id: str
    assignee: str
    actor: str
    def __init__(self, mismatch_id: _Optional[str] = ..., assignee: _Optional[str] = ..., actor: _Optional[str] = ...) -> None: ...

class AnnotateMismatchRequest(_message.Message):
    __slots__ = ("mismatch_id", "note", "actor")
    MISMATCH_ID_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    mismatch_id: str
    note: str
    actor: str
    def __init__(self, mismatch_id: _Optional[str] = ..., note: _Optional[str] = ..., actor: _Optional[str] = ...) -> None: ...

class ResolveMismatchesRequest(_message.Message):
    __slots__ = ("mismatch_ids", "resolution_code", "reason", "actor")
    MISMATCH_IDS_FIELD_NUMBER: _ClassVar[int]
    RESOLUTION_CODE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    mismatch_ids: _containers.RepeatedScalarFieldContainer[str]
    resolution_code: str
    reason: str
    actor: str
    def __init__(self, mismatch_ids: _Optional[_Iterable[str]] = ..., resolution_code: _Optional[str] = ..., reason: _Optional[str] = ..., actor: _Optional[str] = ...) -> None: ...

class StartSettlementRunResponse(_message.Message):
    __slots__ = ("report",)
    REPORT_FIELD_NUMBER: _ClassVar[int]
    report: SettlementRunReport
    def __init__(self, report: _Optional[_Union[SettlementRunReport, _Mapping]] = ...) -> None: ...

class GetSettlementRunResponse(_message.Message):
    __slots__ = ("report",)
    REPORT_FIELD_NUMBER: _ClassVar[int]
    report: SettlementRunReport
    def __init__(self, report: _Optional[_Union[SettlementRunReport, _Mapping]] = ...) -> None: ...

class AssignMismatchResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class AnnotateMismatchResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ResolveMismatchesResponse(_message.Message):
    __slots__ = ("resolved",)
    RESOLVED_FIELD_NUMBER: _ClassVar[int]
    resolved: int
    def __init__(self, resolved: _Optional[int] = ...) -> None: ...

class GetMismatchRequest(_message.Message):
    __slots__ = ("mismatch_id",)
    MISMATCH_ID_FIELD_NUMBER: _ClassVar[int]
    mismatch_id: str
    def __init__(self, mismatch_id: _Optional[str] = ...) -> None: ...

class MismatchAction(_message.Message):
    __slots__ = ("actor", "action", "detail", "create_time")
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    actor: str
    action: str
    detail: str
    create_time: _timestamp_pb2.Timestamp
    def __init__(self, actor: _Optional[str] = ..., action: _Optional[str] = ..., detail: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GetMismatchResponse(_message.Message):
    __slots__ = ("mismatch", "actions")
    MISMATCH_FIELD_NUMBER: _ClassVar[int]
    ACTIONS_FIELD_NUMBER: _ClassVar[int]
    mismatch: Mismatch
    actions: _containers.RepeatedCompositeFieldContainer[MismatchAction]
    def __init__(self, mismatch: _Optional[_Union[Mismatch, _Mapping]] = ..., actions: _Optional[_Iterable[_Union[MismatchAction, _Mapping]]] = ...) -> None: ...
