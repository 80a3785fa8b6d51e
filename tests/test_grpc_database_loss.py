"""A call that loses its database connection (a fail-over, a restart) answers UNAVAILABLE with a
reason, so callers retry with the same key, instead of INTERNAL, which says the request is broken."""

from __future__ import annotations

import grpc
import psycopg
import pytest
import sqlalchemy.exc

from svckit.grpc_errors import error_info
from svckit.grpc_server import with_request_context


class _Aborted(Exception):
    pass


class _Context:
    """What the wrapper uses of a grpc.aio servicer context: the metadata in, the status out."""

    def __init__(self) -> None:
        self.status: grpc.Status | None = None

    def invocation_metadata(self) -> tuple:
        return ()

    async def abort_with_status(self, status: grpc.Status) -> None:
        self.status = status
        raise _Aborted


def _raising(exc: BaseException) -> grpc.RpcMethodHandler:
    async def handler(request, context):
        raise exc

    return grpc.unary_unary_rpc_method_handler(handler)


@pytest.mark.parametrize(
    "lost",
    [
        psycopg.OperationalError("server closed the connection unexpectedly"),
        sqlalchemy.exc.OperationalError("SELECT 1", {}, psycopg.OperationalError("connection refused")),
        sqlalchemy.exc.InterfaceError("SELECT 1", {}, psycopg.InterfaceError("the connection is closed")),
        psycopg.errors.ReadOnlySqlTransaction("cannot execute INSERT in a read-only transaction"),
    ],
    ids=["psycopg", "sqlalchemy-operational", "sqlalchemy-interface", "read-only-standby"],
)
async def test_a_lost_database_connection_is_unavailable_not_internal(lost):
    wrapped = with_request_context("/test.v1.Test/Call", _raising(lost))
    context = _Context()
    with pytest.raises(_Aborted):
        await wrapped.unary_unary(object(), context)
    assert context.status is not None
    assert context.status.code == grpc.StatusCode.UNAVAILABLE
    info = error_info(_as_rpc_error(context.status))
    assert info is not None and info.reason == "DATABASE_UNAVAILABLE"


async def test_any_other_failure_is_still_internal():
    wrapped = with_request_context("/test.v1.Test/Call", _raising(psycopg.errors.UndefinedTable("no table")))
    context = _Context()
    with pytest.raises(_Aborted):
        await wrapped.unary_unary(object(), context)
    assert context.status is not None and context.status.code == grpc.StatusCode.INTERNAL


def _as_rpc_error(status: grpc.Status) -> grpc.RpcError:
    class _Err(grpc.RpcError):
        def trailing_metadata(self):
            return status.trailing_metadata

        def code(self):
            return status.code

        def details(self):
            return status.details

    return _Err()
