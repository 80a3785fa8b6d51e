"""Typed domain errors with stable reasons, and their one mapping to gRPC and HTTP.

    DomainError                  base; never raised directly
    ├── InvalidArgument          the request is malformed; retrying it unchanged cannot succeed
    ├── PermissionDenied         the caller or message may not do this (an identity outside the access table,
    │                            a PSP event without a valid signature)
    ├── NotFound                 the named resource does not exist
    ├── AlreadyExists            a resource with this identity was created by another request
    ├── FailedPrecondition       the request is valid but the current state forbids it
    │                            (illegal state transition, insufficient funds)
    ├── Aborted                  a concurrent request holds the resource (idempotency key in use); retry later
    ├── Unprocessable            the request conflicts with an earlier one (idempotency key reused)
    └── Unavailable              a transient fault; retrying the same request may succeed

Services raise these; each edge (gRPC interceptor, FastAPI handler) maps them exactly once.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import ClassVar

import grpc

ERROR_DOMAIN = "marketplace-payments"


class ErrorKind(enum.Enum):
    """Canonical error categories, each with one gRPC code and one HTTP status."""

    INVALID_ARGUMENT = (grpc.StatusCode.INVALID_ARGUMENT, 400)
    PERMISSION_DENIED = (grpc.StatusCode.PERMISSION_DENIED, 403)
    NOT_FOUND = (grpc.StatusCode.NOT_FOUND, 404)
    ALREADY_EXISTS = (grpc.StatusCode.ALREADY_EXISTS, 409)
    FAILED_PRECONDITION = (grpc.StatusCode.FAILED_PRECONDITION, 409)
    ABORTED = (grpc.StatusCode.ABORTED, 409)
    # gRPC has no "unprocessable": a reused idempotency key is an invalid argument there, 422 in HTTP.
    UNPROCESSABLE = (grpc.StatusCode.INVALID_ARGUMENT, 422)
    UNAVAILABLE = (grpc.StatusCode.UNAVAILABLE, 503)
    INTERNAL = (grpc.StatusCode.INTERNAL, 500)

    @property
    def grpc_code(self) -> grpc.StatusCode:
        return self.value[0]

    @property
    def http_status(self) -> int:
        return self.value[1]


class DomainError(Exception):
    """An expected failure with a stable UPPER_SNAKE ``reason`` that clients may branch on."""

    kind: ClassVar[ErrorKind] = ErrorKind.INTERNAL

    def __init__(self, reason: str, message: str, metadata: Mapping[str, object] | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.metadata: dict[str, str] = {k: str(v) for k, v in (metadata or {}).items()}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.reason!r}, {self.message!r})"


class InvalidArgument(DomainError):
    kind = ErrorKind.INVALID_ARGUMENT

    def __init__(self, reason: str, message: str, field: str | None = None, **metadata: str) -> None:
        if field:
            metadata["field"] = field
        super().__init__(reason, message, metadata)


class PermissionDenied(DomainError):
    kind = ErrorKind.PERMISSION_DENIED


class NotFound(DomainError):
    kind = ErrorKind.NOT_FOUND


class AlreadyExists(DomainError):
    kind = ErrorKind.ALREADY_EXISTS


class FailedPrecondition(DomainError):
    kind = ErrorKind.FAILED_PRECONDITION


class Aborted(DomainError):
    kind = ErrorKind.ABORTED


class Unprocessable(DomainError):
    kind = ErrorKind.UNPROCESSABLE


class Unavailable(DomainError):
    kind = ErrorKind.UNAVAILABLE


class Internal(DomainError):
    kind = ErrorKind.INTERNAL


_BY_KIND_NAME = {cls.kind.name: cls for cls in DomainError.__subclasses__()}


def error_class_for(kind_name: str) -> type[DomainError]:
    """The DomainError subclass for an ErrorKind name (used when decoding a remote error)."""
    return _BY_KIND_NAME.get(kind_name, Internal)
