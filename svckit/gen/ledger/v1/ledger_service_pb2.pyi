import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AccountType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ACCOUNT_TYPE_UNSPECIFIED: _ClassVar[AccountType]
    ACCOUNT_TYPE_ASSET: _ClassVar[AccountType]
    ACCOUNT_TYPE_LIABILITY: _ClassVar[AccountType]
    ACCOUNT_TYPE_EQUITY: _ClassVar[AccountType]
    ACCOUNT_TYPE_REVENUE: _ClassVar[AccountType]
    ACCOUNT_TYPE_EXPENSE: _ClassVar[AccountType]

class AccountState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ACCOUNT_STATE_UNSPECIFIED: _ClassVar[AccountState]
    ACCOUNT_STATE_OPEN: _ClassVar[AccountState]
    ACCOUNT_STATE_CLOSED: _ClassVar[AccountState]

class Direction(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DIRECTION_UNSPECIFIED: _ClassVar[Direction]
    DIRECTION_DEBIT: _ClassVar[Direction]
    DIRECTION_CREDIT: _ClassVar[Direction]

class FindingKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FINDING_KIND_UNSPECIFIED: _ClassVar[FindingKind]
    FINDING_KIND_HASH_MISMATCH: _ClassVar[FindingKind]
    FINDING_KIND_CHAIN_BROKEN: _ClassVar[FindingKind]
    FINDING_KIND_SEQUENCE_GAP: _ClassVar[FindingKind]
    FINDING_KIND_UNBALANCED_TRANSACTION: _ClassVar[FindingKind]
    FINDING_KIND_BALANCE_MISMATCH: _ClassVar[FindingKind]
    FINDING_KIND_CHAIN_HEAD_MISMATCH: _ClassVar[FindingKind]
    FINDING_KIND_CURRENCY_MISMATCH: _ClassVar[FindingKind]
    FINDING_KIND_NEGATIVE_BALANCE: _ClassVar[FindingKind]
    FINDING_KIND_UNCHAINED_TRANSACTION: _ClassVar[FindingKind]
ACCOUNT_TYPE_UNSPECIFIED: AccountType
ACCOUNT_TYPE_ASSET: AccountType
ACCOUNT_TYPE_LIABILITY: AccountType
ACCOUNT_TYPE_EQUITY: AccountType
ACCOUNT_TYPE_REVENUE: AccountType
ACCOUNT_TYPE_EXPENSE: AccountType
ACCOUNT_STATE_UNSPECIFIED: AccountState
ACCOUNT_STATE_OPEN: AccountState
ACCOUNT_STATE_CLOSED: AccountState
DIRECTION_UNSPECIFIED: Direction
DIRECTION_DEBIT: Direction
DIRECTION_CREDIT: Direction
FINDING_KIND_UNSPECIFIED: FindingKind
FINDING_KIND_HASH_MISMATCH: FindingKind
FINDING_KIND_CHAIN_BROKEN: FindingKind
FINDING_KIND_SEQUENCE_GAP: FindingKind
FINDING_KIND_UNBALANCED_TRANSACTION: FindingKind
FINDING_KIND_BALANCE_MISMATCH: FindingKind
FINDING_KIND_CHAIN_HEAD_MISMATCH: FindingKind
FINDING_KIND_CURRENCY_MISMATCH: FindingKind
FINDING_KIND_NEGATIVE_BALANCE: FindingKind
FINDING_KIND_UNCHAINED_TRANSACTION: FindingKind

class Account(_message.Message):
    __slots__ = ("name", "type", "currency", "create_time", "state", "close_time", "non_negative")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    CLOSE_TIME_FIELD_NUMBER: _ClassVar[int]
    NON_NEGATIVE_FIELD_NUMBER: _ClassVar[int]
    name: str
    type: AccountType
    currency: str
    create_time: _timestamp_pb2.Timestamp
    state: AccountState
    close_time: _timestamp_pb2.Timestamp
    non_negative: bool
    def __init__(self, name: _Optional[str] = ..., type: _Optional[_Union[AccountType, str]] = ..., currency: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., state: _Optional[_Union[AccountState, str]] = ..., close_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., non_negative: _Optional[bool] = ...) -> None: ...

class CreateAccountRequest(_message.Message):
    __slots__ = ("name", "currency", "non_negative")
    NAME_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    NON_NEGATIVE_FIELD_NUMBER: _ClassVar[int]
    name: str
    currency: str
    non_negative: bool
    def __init__(self, name: _Optional[str] = ..., currency: _Optional[str] = ..., non_negative: _Optional[bool] = ...) -> None: ...

class CreateAccountResponse(_message.Message):
    __slots__ = ("account",)
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    account: Account
    def __init__(self, account: _Optional[_Union[Account, _Mapping]] = ...) -> None: ...

class GetAccountRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class GetAccountResponse(_message.Message):
    __slots__ = ("account",)
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    account: Account
    def __init__(self, account: _Optional[_Union[Account, _Mapping]] = ...) -> None: ...

class ListAccountsRequest(_message.Message):
    __slots__ = ("name_prefix", "page_size", "page_token")
    NAME_PREFIX_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    name_prefix: str
    page_size: int
    page_token: str
    def __init__(self, name_prefix: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListAccountsResponse(_message.Message):
    __slots__ = ("accounts", "next_page_token")
    ACCOUNTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    accounts: _containers.RepeatedCompositeFieldContainer[Account]
    next_page_token: str
    def __init__(self, accounts: _Optional[_Iterable[_Union[Account, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class CloseAccountRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class CloseAccountResponse(_message.Message):
    __slots__ = ("account",)
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    account: Account
    def __init__(self, account: _Optional[_Union[Account, _Mapping]] = ...) -> None: ...

class Entry(_message.Message):
    __slots__ = ("account", "direction", "amount_minor", "currency")
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    DIRECTION_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_MINOR_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    account: str
    direction: Direction
    amount_minor: int
    currency: str
    def __init__(self, account: _Optional[str] = ..., direction: _Optional[_Union[Direction, str]] = ..., amount_minor: _Optional[int] = ..., currency: _Optional[str] = ...) -> None: ...

class Transaction(_message.Message):
    __slots__ = ("id", "entries", "description", "external_ref", "metadata", "post_time", "reverses_id", "sequence", "hash", "previous_hash")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    EXTERNAL_REF_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    POST_TIME_FIELD_NUMBER: _ClassVar[int]
    REVERSES_ID_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    HASH_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_HASH_FIELD_NUMBER: _ClassVar[int]
    id: int
    entries: _containers.RepeatedCompositeFieldContainer[Entry]
    description: str
    external_ref: str
    metadata: _containers.ScalarMap[str, str]
    post_time: _timestamp_pb2.Timestamp
    reverses_id: int
    sequence: int
    hash: bytes
    previous_hash: bytes
    def __init__(self, id: _Optional[int] = ..., entries: _Optional[_Iterable[_Union[Entry, _Mapping]]] = ..., description: _Optional[str] = ..., external_ref: _Optional[str] = ..., metadata: _Optional[_Mapping[str, str]] = ..., post_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., reverses_id: _Optional[int] = ..., sequence: _Optional[int] = ..., hash: _Optional[bytes] = ..., previous_hash: _Optional[bytes] = ...) -> None: ...

class PostTransactionRequest(_message.Message):
    __slots__ = ("entries", "description", "external_ref", "metadata")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    EXTERNAL_REF_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[Entry]
    description: str
    external_ref: str
    metadata: _containers.ScalarMap[str, str]
    def __init__(self, entries: _Optional[_Iterable[_Union[Entry, _Mapping]]] = ..., description: _Optional[str] = ..., external_ref: _Optional[str] = ..., metadata: _Optional[_Mapping[str, str]] = ...) -> None: ...

class PostTransactionResponse(_message.Message):
    __slots__ = ("transaction",)
    TRANSACTION_FIELD_NUMBER: _ClassVar[int]
    transaction: Transaction
    def __init__(self, transaction: _Optional[_Union[Transaction, _Mapping]] = ...) -> None: ...

class PostTransactionsItem(_message.Message):
    __slots__ = ("idempotency_key", "transaction")
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    TRANSACTION_FIELD_NUMBER: _ClassVar[int]
    idempotency_key: str
    transaction: PostTransactionRequest
    def __init__(self, idempotency_key: _Optional[str] = ..., transaction: _Optional[_Union[PostTransactionRequest, _Mapping]] = ...) -> None: ...

class PostTransactionsRequest(_message.Message):
    __slots__ = ("items",)
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[PostTransactionsItem]
    def __init__(self, items: _Optional[_Iterable[_Union[PostTransactionsItem, _Mapping]]] = ...) -> None: ...

class ItemError(_message.Message):
    __slots__ = ("reason", "message", "code")
    REASON_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    reason: str
    message: str
    code: str
    def __init__(self, reason: _Optional[str] = ..., message: _Optional[str] = ..., code: _Optional[str] = ...) -> None: ...

class PostTransactionsResult(_message.Message):
    __slots__ = ("transaction", "error", "replayed")
    TRANSACTION_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    REPLAYED_FIELD_NUMBER: _ClassVar[int]
    transaction: Transaction
    error: ItemError
    replayed: bool
    def __init__(self, transaction: _Optional[_Union[Transaction, _Mapping]] = ..., error: _Optional[_Union[ItemError, _Mapping]] = ..., replayed: _Optional[bool] = ...) -> None: ...

class PostTransactionsResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[PostTransactionsResult]
    def __init__(self, results: _Optional[_Iterable[_Union[PostTransactionsResult, _Mapping]]] = ...) -> None: ...

class ReverseTransactionRequest(_message.Message):
    __slots__ = ("transaction_id", "description", "external_ref", "metadata")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    TRANSACTION_ID_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    EXTERNAL_REF_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    transaction_id: int
    description: str
    external_ref: str
    metadata: _containers.ScalarMap[str, str]
    def __init__(self, transaction_id: _Optional[int] = ..., description: _Optional[str] = ..., external_ref: _Optional[str] = ..., metadata: _Optional[_Mapping[str, str]] = ...) -> None: ...

class ReverseTransactionResponse(_message.Message):
    __slots__ = ("transaction",)
    TRANSACTION_FIELD_NUMBER: _ClassVar[int]
    transaction: Transaction
    def __init__(self, transaction: _Optional[_Union[Transaction, _Mapping]] = ...) -> None: ...

class GetTransactionRequest(_message.Message):
    __slots__ = ("transaction_id",)
    TRANSACTION_ID_FIELD_NUMBER: _ClassVar[int]
    transaction_id: int
    def __init__(self, transaction_id: _Optional[int] = ...) -> None: ...

class GetTransactionResponse(_message.Message):
    __slots__ = ("transaction",)
    TRANSACTION_FIELD_NUMBER: _ClassVar[int]
    transaction: Transaction
    def __init__(self, transaction: _Optional[_Union[Transaction, _Mapping]] = ...) -> None: ...

class ListTransactionsRequest(_message.Message):
    __slots__ = ("external_ref", "page_size", "page_token", "post_time_from", "post_time_before")
    EXTERNAL_REF_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    POST_TIME_FROM_FIELD_NUMBER: _ClassVar[int]
    POST_TIME_BEFORE_FIELD_NUMBER: _ClassVar[int]
    external_ref: str
    page_size: int
    page_token: str
    post_time_from: _timestamp_pb2.Timestamp
    post_time_before: _timestamp_pb2.Timestamp
    def __init__(self, external_ref: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., post_time_from: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., post_time_before: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListTransactionsResponse(_message.Message):
    __slots__ = ("transactions", "next_page_token")
    TRANSACTIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    transactions: _containers.RepeatedCompositeFieldContainer[Transaction]
    next_page_token: str
    def __init__(self, transactions: _Optional[_Iterable[_Union[Transaction, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetBalanceRequest(_message.Message):
    __slots__ = ("account", "as_of")
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    AS_OF_FIELD_NUMBER: _ClassVar[int]
    account: str
    as_of: _timestamp_pb2.Timestamp
    def __init__(self, account: _Optional[str] = ..., as_of: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GetBalanceResponse(_message.Message):
    __slots__ = ("account", "currency", "debits_minor", "credits_minor", "balance_minor", "last_transaction_id")
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    DEBITS_MINOR_FIELD_NUMBER: _ClassVar[int]
    CREDITS_MINOR_FIELD_NUMBER: _ClassVar[int]
    BALANCE_MINOR_FIELD_NUMBER: _ClassVar[int]
    LAST_TRANSACTION_ID_FIELD_NUMBER: _ClassVar[int]
    account: str
    currency: str
    debits_minor: int
    credits_minor: int
    balance_minor: int
    last_transaction_id: int
    def __init__(self, account: _Optional[str] = ..., currency: _Optional[str] = ..., debits_minor: _Optional[int] = ..., credits_minor: _Optional[int] = ..., balance_minor: _Optional[int] = ..., last_transaction_id: _Optional[int] = ...) -> None: ...

class GetBalancesRequest(_message.Message):
    __slots__ = ("accounts",)
    ACCOUNTS_FIELD_NUMBER: _ClassVar[int]
    accounts: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, accounts: _Optional[_Iterable[str]] = ...) -> None: ...

class GetBalancesResponse(_message.Message):
    __slots__ = ("balances",)
    BALANCES_FIELD_NUMBER: _ClassVar[int]
    balances: _containers.RepeatedCompositeFieldContainer[GetBalanceResponse]
    def __init__(self, balances: _Optional[_Iterable[_Union[GetBalanceResponse, _Mapping]]] = ...) -> None: ...

class ListEntriesRequest(_message.Message):
    __slots__ = ("account", "page_size", "page_token")
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    account: str
    page_size: int
    page_token: str
    def __init__(self, account: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class AccountEntry(_message.Message):
    __slots__ = ("entry_id", "transaction_id", "direction", "amount_minor", "currency", "post_time")
    ENTRY_ID_FIELD_NUMBER: _ClassVar[int]
    TRANSACTION_ID_FIELD_NUMBER: _ClassVar[int]
    DIRECTION_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_MINOR_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    POST_TIME_FIELD_NUMBER: _ClassVar[int]
    entry_id: int
    transaction_id: int
    direction: Direction
    amount_minor: int
    currency: str
    post_time: _timestamp_pb2.Timestamp
    def __init__(self, entry_id: _Optional[int] = ..., transaction_id: _Optional[int] = ..., direction: _Optional[_Union[Direction, str]] = ..., amount_minor: _Optional[int] = ..., currency: _Optional[str] = ..., post_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListEntriesResponse(_message.Message):
    __slots__ = ("entries", "next_page_token")
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[AccountEntry]
    next_page_token: str
    def __init__(self, entries: _Optional[_Iterable[_Union[AccountEntry, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class VerifyLedgerRequest(_message.Message):
    __slots__ = ("max_findings",)
    MAX_FINDINGS_FIELD_NUMBER: _ClassVar[int]
    max_findings: int
    def __init__(self, max_findings: _Optional[int] = ...) -> None: ...

class Finding(_message.Message):
    __slots__ = ("kind", "transaction_id", "account", "expected", "actual", "detail")
    KIND_FIELD_NUMBER: _ClassVar[int]
    TRANSACTION_ID_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_FIELD_NUMBER: _ClassVar[int]
    ACTUAL_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    kind: FindingKind
    transaction_id: int
    account: str
    expected: str
    actual: str
    detail: str
    def __init__(self, kind: _Optional[_Union[FindingKind, str]] = ..., transaction_id: _Optional[int] = ..., account: _Optional[str] = ..., expected: _Optional[str] = ..., actual: _Optional[str] = ..., detail: _Optional[str] = ...) -> None: ...

class VerifyLedgerResponse(_message.Message):
    __slots__ = ("ok", "findings", "transactions_checked", "accounts_checked", "truncated", "transactions_pending_link")
    OK_FIELD_NUMBER: _ClassVar[int]
    FINDINGS_FIELD_NUMBER: _ClassVar[int]
    TRANSACTIONS_CHECKED_FIELD_NUMBER: _ClassVar[int]
    ACCOUNTS_CHECKED_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    TRANSACTIONS_PENDING_LINK_FIELD_NUMBER: _ClassVar[int]
    ok: bool
    findings: _containers.RepeatedCompositeFieldContainer[Finding]
    transactions_checked: int
    accounts_checked: int
    truncated: bool
    transactions_pending_link: int
    def __init__(self, ok: _Optional[bool] = ..., findings: _Optional[_Iterable[_Union[Finding, _Mapping]]] = ..., transactions_checked: _Optional[int] = ..., accounts_checked: _Optional[int] = ..., truncated: _Optional[bool] = ..., transactions_pending_link: _Optional[int] = ...) -> None: ...
