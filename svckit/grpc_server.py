"""Building and running a ``grpc.aio`` server the same way in every service.

Every server gets: the standard health service, server reflection, the request-context interceptor
(``x-request-id`` and ``idempotency-key`` into contextvars and logs), one mapping of
:class:`~svckit.errors.DomainError` to a rich status, Prometheus metrics, and graceful shutdown.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from svckit.context import (
    IDEMPOTENCY_KEY_METADATA,
    REQUEST_ID_METADATA,
    idempotency_key_var,
    new_request_id,
    request_id_var,
)
from svckit.errors import DomainError, Internal
from svckit.grpc_errors import to_status
from svckit.logging import get_logger
from svckit.metrics import GRPC_LATENCY, GRPC_REQUESTS

log = get_logger(__name__)

MAX_IDEMPOTENCY_KEY_LENGTH = 255


class RequestContextInterceptor(grpc.aio.ServerInterceptor):
    """Binds request metadata to the context, logs each call, and maps typed errors to statuses.

    This is the single place where a DomainError becomes a gRPC status: servicers simply raise.
    """

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        method = handler_call_details.method
        if method.startswith(("/grpc.health.", "/grpc.reflection.")):
            return handler
        metadata = dict(handler_call_details.invocation_metadata or ())
        inner = handler.unary_unary

        async def behavior(request: Any, context: grpc.aio.ServicerContext) -> Any:
            rid = metadata.get(REQUEST_ID_METADATA) or new_request_id()
            key = metadata.get(IDEMPOTENCY_KEY_METADATA) or None
            rid_token = request_id_var.set(rid)
            key_token = idempotency_key_var.set(key)
            started = time.perf_counter()
            code = grpc.StatusCode.OK
            try:
                return await inner(request, context)
            except DomainError as err:
                code = err.kind.grpc_code
                log.info("rpc refused", method=method, reason=err.reason, detail=err.message)
                await context.abort_with_status(to_status(err))
            except asyncio.CancelledError:
                code = grpc.StatusCode.CANCELLED
                raise
            except grpc.aio.AbortError:
                code = context.code() or grpc.StatusCode.UNKNOWN
                raise
            except Exception:
                code = grpc.StatusCode.INTERNAL
                log.exception("rpc failed", method=method)
                await context.abort_with_status(
                    to_status(Internal("INTERNAL", f"internal error; quote request id {rid}"))
                )
            finally:
                elapsed = time.perf_counter() - started
                GRPC_REQUESTS.labels(method, code.name).inc()
                GRPC_LATENCY.labels(method).observe(elapsed)
                request_id_var.reset(rid_token)
                idempotency_key_var.reset(key_token)

        return grpc.unary_unary_rpc_method_handler(
            behavior,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


@dataclass
class Registration:
    """One servicer to mount: the generated ``add_XServicer_to_server`` function and its full service name."""

    add_to_server: Callable[[Any, grpc.aio.Server], None]
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
) -> RunningServer:
    """Start a server on ``host:port`` (port 0 picks a free one) and mark every service SERVING."""
    server = grpc.aio.server(
        interceptors=[RequestContextInterceptor(), *extra_interceptors],
        options=[("grpc.so_reuseport", 0), ("grpc.max_receive_message_length", 16 * 1024 * 1024)],
    )
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    for reg in registrations:
        reg.add_to_server(reg.servicer, server)
    names = [reg.service_name for reg in registrations]
    reflection.enable_server_reflection([*names, health.SERVICE_NAME, reflection.SERVICE_NAME], server)
    bound = server.add_insecure_port(f"{host}:{port}")
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
