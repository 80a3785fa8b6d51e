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
RECONCILIATION_RUN_STATE_UNSPECIFIED: ReconciliationRunState
RECONCILIATION_RUN_STATE_RUNNING: ReconciliationRunState
RECONCILIATION_RUN_STATE_SUCCEEDED: ReconciliationRunState
RECONCILIATION_RUN_STATE_FAILED: ReconciliationRunState

class ReconciliationRun(_message.Message):
    __slots__ = ("run_id", "state", "interval_start_time", "interval_end_time", "create_time")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    INTERVAL_START_TIME_FIELD_NUMBER: _ClassVar[int]
    INTERVAL_END_TIME_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    state: ReconciliationRunState
    interval_start_time: _timestamp_pb2.Timestamp
    interval_end_time: _timestamp_pb2.Timestamp
    create_time: _timestamp_pb2.Timestamp
    def __init__(self, run_id: _Optional[str] = ..., state: _Optional[_Union[ReconciliationRunState, str]] = ..., interval_start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., interval_end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

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
