"""Whether a child is ready (gRPC health ``SERVING``, its HTTP ready path answering 200, or its
port open), and the start-up failures the supervisor reports."""

from __future__ import annotations

import grpc
import httpx
from grpc_health.v1 import health_pb2, health_pb2_grpc

from svckit.devstack.infra import port_open
from svckit.devstack.plan import Child, DevTls


class ChildFailed(RuntimeError):
    def __init__(self, child: Child) -> None:
        super().__init__(
            f"{child.name} exited with code {child.proc.returncode if child.proc else '?'} during start-up"
        )
        self.child = child


def _is_ready(child: Child, tls: DevTls) -> bool:
    if child.kind == "grpc":
        try:
            with tls.probe_security().channel(child.address) as channel:
                reply = health_pb2_grpc.HealthStub(channel).Check(  # type: ignore[attr-defined]  # the stub declares no methods
                    health_pb2.HealthCheckRequest(), timeout=0.5
                )
                return reply.status == health_pb2.HealthCheckResponse.SERVING
        except grpc.RpcError:
            return False
    if child.kind == "http":
        try:
            return (
                httpx.get(
                    f"{child.url}{child.ready_path or '/'}", timeout=1.0, verify=tls.http_verify()
                ).status_code
                == 200
            )
        except httpx.HTTPError:
            return False
    return port_open("127.0.0.1", child.port)


def _require_free(port: int, what: str, variable: str | None) -> None:
    if port_open("127.0.0.1", port):
        hint = (
            f"; set {variable} to use another port"
            if variable
            else "; stop whatever listens there or set its *_PORT variable"
        )
        raise SystemExit(f"port {port} for {what} is already in use{hint}")
