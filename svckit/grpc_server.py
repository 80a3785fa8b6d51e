"""Building and running a ``grpc.aio`` server the same way in every service.

Every server gets: mutual TLS (svckit/tls.py), the standard health service, server reflection, the
request context on every method of our services (``x-request-id`` and ``idempotency-key`` into
contextvars and logs), the caller check against the service's access table (svckit/access.py), one
mapping of :class:`~svckit.errors.DomainError` to a rich status, Prometheus metrics, and graceful shutdown.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, cast

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from svckit.access import AccessTable, CallerNotAllowed
from svckit.context import (
    IDEMPOTENCY_KEY_METADATA,
    REQUEST_ID_METADATA,
    idempotency_key_var,
    new_request_id,
    request_id_var,
)
from svckit.db import database_error_text, database_unavailable
from svckit.errors import DomainError, ErrorKind, Internal, Unavailable
from svckit.grpc_errors import to_status
from svckit.logging import get_logger
from svckit.metrics import GRPC_LATENCY, GRPC_REQUESTS
from svckit.redisclient import redis_unavailable
from svckit.tls import INSECURE_WARNING, GrpcSecurity, caller_identity

log = get_logger(__name__)

MAX_IDEMPOTENCY_KEY_LENGTH = 255


def _labelled(metric: Any) -> Callable[..., Any]:
    """``metric.labels`` memoised: looking a child up costs a lock and a dict walk on every call."""
    children: dict[tuple[str, ...], Any] = {}

    def child(*labels: str) -> Any:
        found = children.get(labels)
        if found is None:
            found = children[labels] = metric.labels(*labels)
        return found

    return child


_requests = _labelled(GRPC_REQUESTS)
_latency = _labelled(GRPC_LATENCY)


def with_request_context(
    method: str, handler: grpc.RpcMethodHandler, allowed: frozenset[str] | None = None
) -> grpc.RpcMethodHandler:
    """Wrap one unary method: bind ``x-request-id``/``idempotency-key`` to contextvars, refuse a caller
    not in ``allowed`` (None: no check, plaintext mode) before anything runs, log, measure, and map
    typed errors to statuses — the single place a DomainError becomes a gRPC status.

    Applied once per method when a servicer is registered (see :func:`start_server`) rather than as
    a server interceptor: grpc.aio runs interceptors as a coroutine chain on every call, which
    costs more than the call's own work in the cheaper RPCs."""
    if handler.unary_unary is None:
        if allowed is not None:
            # Only unary methods are wrapped; a streaming one would skip the caller check.
            raise ValueError(f"{method}: streaming RPCs are not supported behind the access check")
        return handler
    # On a grpc.aio server the handler is a coroutine function taking the aio context; the stubs
    # describe only the synchronous server's handlers.
    inner = cast(Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]], handler.unary_unary)

    async def behavior(request: Any, context: grpc.aio.ServicerContext) -> Any:
        rid = key = None
        for name, value in context.invocation_metadata() or ():
            if isinstance(value, bytes):  # only "-bin" keys carry bytes; ours are text
                continue
            if name == REQUEST_ID_METADATA:
                rid = value
            elif name == IDEMPOTENCY_KEY_METADATA:
                key = value or None
        rid = rid or new_request_id()
        rid_token = request_id_var.set(rid)
        key_token = idempotency_key_var.set(key)
        started = time.perf_counter()
        code = grpc.StatusCode.OK
        try:
            if allowed is not None:
                caller = caller_identity(context)
                if caller not in allowed:
                    raise CallerNotAllowed(caller, method)
            return await inner(request, context)
        except DomainError as err:
            code = err.kind.grpc_code
            # A refused caller is a security event (a misconfiguration or a probe): a warning.
            emit = log.warning if err.kind is ErrorKind.PERMISSION_DENIED else log.info
            emit("rpc refused", method=method, reason=err.reason, detail=err.message)
            await context.abort_with_status(to_status(err))
        except asyncio.CancelledError:
            code = grpc.StatusCode.CANCELLED
            raise
        except grpc.aio.AbortError:
            code = context.code() or grpc.StatusCode.UNKNOWN
            raise
        except Exception as exc:
            outage = _outage(exc)
            if outage is not None:
                answer, what, error = outage
                code = grpc.StatusCode.UNAVAILABLE
                log.warning(f"rpc failed: {what} unavailable", method=method, error=error)
                await context.abort_with_status(to_status(answer))
            code = grpc.StatusCode.INTERNAL
            log.exception("rpc failed", method=method)
            await context.abort_with_status(
                to_status(Internal("INTERNAL", f"internal error; quote request id {rid}"))
            )
        finally:
            _requests(method, code.name).inc()
            _latency(method).observe(time.perf_counter() - started)
            request_id_var.reset(rid_token)
            idempotency_key_var.reset(key_token)

    return grpc.unary_unary_rpc_method_handler(
        behavior,
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )


def _outage(exc: BaseException) -> tuple[Unavailable, str, str] | None:
    """A store away for a moment (a restart, a failover), not a bug: the retryable error to answer, as
    the client should be told, and what to log; None for any other failure."""
    if database_unavailable(exc):
        error = Unavailable(
            "DATABASE_UNAVAILABLE", "the database is unreachable or dropped the connection; retry"
        )
        return error, "database", database_error_text(exc)
    if redis_unavailable(exc):  # Valkey restarted or unreachable (chaos seed 123)
        error = Unavailable(
            "UPSTREAM_UNAVAILABLE",
            "the event store (Valkey) is unreachable or dropped the connection; retry",
        )
        return error, "Valkey", str(exc)
    return None


def _allowed(access: AccessTable | None, method: str) -> frozenset[str] | None:
    # A method the table does not name is refused to everyone (fail closed).
    return None if access is None else access.get(method, frozenset())


class _ContextGenericHandler(grpc.GenericRpcHandler):
    """A generic handler whose methods are wrapped by :func:`with_request_context` (once each)."""

    def __init__(self, inner: grpc.GenericRpcHandler, access: AccessTable | None) -> None:
        self._inner = inner
        self._access = access
        self._wrapped: dict[str, grpc.RpcMethodHandler] = {}

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        method = handler_call_details.method
        wrapped = self._wrapped.get(method)
        if wrapped is None:
            found = self._inner.service(handler_call_details)
            if found is None:
                return None  # not cached: a caller sending made-up method names must not grow the map
            wrapped = self._wrapped[method] = with_request_context(
                method, found, _allowed(self._access, method)
            )
        return wrapped


class HandlerRegistry(Protocol):
    """The part of a server that a generated ``add_XServicer_to_server`` function calls."""

    def add_generic_rpc_handlers(self, handlers: Iterable[grpc.GenericRpcHandler]) -> None: ...

    def add_registered_method_handlers(
        self, service: str, handlers: dict[str, grpc.RpcMethodHandler]
    ) -> None: ...


class _RegisteringServer:
    """What ``add_XServicer_to_server`` sees: the server, with every method it adds wrapped."""

    def __init__(self, server: grpc.aio.Server, access: AccessTable | None) -> None:
        self._server = server
        self._access = access

    def add_generic_rpc_handlers(self, handlers: Iterable[grpc.GenericRpcHandler]) -> None:
        self._server.add_generic_rpc_handlers(
            tuple(_ContextGenericHandler(h, self._access) for h in handlers)
        )

    def add_registered_method_handlers(
        self, service: str, handlers: dict[str, grpc.RpcMethodHandler]
    ) -> None:
        wrapped = {}
        for name, handler in handlers.items():
            method = f"/{service}/{name}"
            wrapped[name] = with_request_context(method, handler, _allowed(self._access, method))
        self._server.add_registered_method_handlers(service, wrapped)


@dataclass
class Registration:
    """One servicer to mount: the generated ``add_XServicer_to_server`` function and its full service name."""

    add_to_server: Callable[[Any, HandlerRegistry], None]
    servicer: Any
    service_name: str


@dataclass
class RunningServer:
    server: grpc.aio.Server
    port: int
    health: health.aio.HealthServicer

    async def stop(self, grace_seconds: float) -> None:
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace_seconds)


async def start_server(
    registrations: Sequence[Registration],
    host: str,
    port: int,
    extra_interceptors: Iterable[grpc.aio.ServerInterceptor] = (),
    *,
    security: GrpcSecurity,
    access: AccessTable | None,
) -> RunningServer:
    """Start a server on ``host:port`` (port 0 picks a free one) and mark every service SERVING.

    With mutual TLS, every call of our services is checked against ``access`` (required then); in
    plaintext mode (``GRPC_INSECURE``) there is no caller identity, so nothing is checked."""
    if not security.insecure and access is None:
        raise ValueError("a server with mutual TLS needs an access table (who may call what)")
    server = grpc.aio.server(
        interceptors=list(extra_interceptors) or None,
        options=[("grpc.so_reuseport", 0), ("grpc.max_receive_message_length", 16 * 1024 * 1024)],
    )
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    registering = _RegisteringServer(server, None if security.insecure else access)
    for reg in registrations:
        reg.add_to_server(reg.servicer, registering)
    names = [reg.service_name for reg in registrations]
    reflection.enable_server_reflection([*names, health.SERVICE_NAME, reflection.SERVICE_NAME], server)
    if security.insecure:
        log.warning(INSECURE_WARNING, address=f"{host}:{port}")
        bound = server.add_insecure_port(f"{host}:{port}")
    else:
        bound = server.add_secure_port(f"{host}:{port}", security.server_credentials())
    if bound == 0:
        raise OSError(f"could not bind gRPC server to {host}:{port}")
    await server.start()
    for name in ["", *names]:
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    return RunningServer(server=server, port=bound, health=health_servicer)


async def run_until_signalled(
    running: RunningServer,
    grace_seconds: float,
    on_shutdown: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Serve until SIGTERM or SIGINT, then drain in-flight calls for up to ``grace_seconds``."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    waiter = asyncio.ensure_future(running.server.wait_for_termination())
    stopper = asyncio.ensure_future(stop.wait())
    await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
    log.info("shutting down", grace_seconds=grace_seconds)
    await running.stop(grace_seconds)
    if on_shutdown is not None:
        await on_shutdown()
    for task in (waiter, stopper):
        task.cancel()
    log.info("stopped")
