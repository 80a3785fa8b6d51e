"""Encode DomainError into a rich gRPC status (google.rpc.ErrorInfo) and decode it on the client side."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar, cast

import grpc
from google.protobuf import any_pb2
from google.protobuf.message import Message
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from svckit.errors import ERROR_DOMAIN, DomainError, ErrorKind, Internal, Unavailable, error_class_for
from svckit.redaction import redact

# ErrorInfo.metadata key that carries the ErrorKind, so a client can rebuild the exact typed error
# (INVALID_ARGUMENT in gRPC is either InvalidArgument or Unprocessable).
KIND_KEY = "kind"


R = TypeVar("R")


def to_status(error: DomainError) -> grpc.Status:
    # The message and metadata leave the process: no secret or card number quoted from an exception.
    metadata = {k: redact(v) for k, v in error.metadata.items()}
    info = error_details_pb2.ErrorInfo(
        reason=error.reason, domain=ERROR_DOMAIN, metadata={**metadata, KIND_KEY: error.kind.name}
    )
    detail = any_pb2.Any()
    detail.Pack(info)
    status = status_pb2.Status(
        code=error.kind.grpc_code.value[0], message=redact(error.message), details=[detail]
    )
    return rpc_status.to_status(status)


def error_info(error: grpc.RpcError) -> error_details_pb2.ErrorInfo | None:
    # A failed call's RpcError is also the call (grpc.aio's AioRpcError has code, details and
    # trailing_metadata); the stubs keep the two classes apart.
    status = rpc_status.from_call(cast(grpc.Call, error))
    if status is None:
        return None
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return info
    return None


_TRANSIENT = {
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
}


def from_rpc_error(error: grpc.RpcError) -> DomainError:
    """Turn a failed call into the typed error the server raised, or a generic one for transport faults."""
    info = error_info(error)
    code = error.code()
    # Transport errors quote addresses and library text; scrubbed before it becomes our error message.
    details = redact(error.details() or code.name)
    if info is not None and info.domain == ERROR_DOMAIN:
        metadata = dict(info.metadata)
        kind_name = metadata.pop(KIND_KEY, "")
        cls = error_class_for(kind_name) if kind_name in ErrorKind.__members__ else Internal
        err = DomainError.__new__(cls)
        DomainError.__init__(err, info.reason, details, metadata)
        return err
    if code in _TRANSIENT:
        return Unavailable("UPSTREAM_UNAVAILABLE", f"upstream call failed: {details}")
    return Internal("UPSTREAM_ERROR", f"upstream call failed with {code.name}: {details}")


__all__ = ["code_pb2", "error_info", "from_rpc_error", "to_status"]


async def pages(
    rpc: Callable[..., Awaitable[R]], request: Message, deadline_seconds: float
) -> AsyncIterator[R]:
    """Every page of a keyset-paged listing RPC, in order: ``request`` is sent again with each answer's
    ``next_page_token`` until one has none. A failed call is raised as its :class:`DomainError`."""
    while True:
        try:
            page = await rpc(request, timeout=deadline_seconds)
        except grpc.aio.AioRpcError as exc:
            raise from_rpc_error(exc) from None
        yield page
        token = getattr(page, "next_page_token", "")
        if not token:
            return
        request.page_token = token  # type: ignore[attr-defined]  # every listing request has one
