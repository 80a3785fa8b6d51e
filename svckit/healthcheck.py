"""Container health probe: ``python -m svckit.healthcheck grpc HOST:PORT`` or ``http URL``; exit 0 when healthy.

The slim image has no curl or grpc_health_probe, and Python is already there. The gRPC probe calls
with the container's own identity (the unprefixed ``TLS_CA_FILE``, ``TLS_CERT_FILE``, ``TLS_KEY_FILE``,
or ``GRPC_INSECURE=true``); the HTTP probe verifies HTTPS against ``TLS_CA_FILE`` when set.
"""

from __future__ import annotations

import os
import ssl
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from svckit.tls import GrpcSecurity


def check(kind: str, target: str, timeout: float = 2.0, security: GrpcSecurity | None = None) -> bool:
    """Whether ``target`` answers healthy; a gRPC probe calls as ``security`` (default: from the environment)."""
    if kind == "grpc":
        import grpc
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        from svckit.tls import from_environment

        security = security or from_environment()
        try:
            with security.channel(target) as channel:
                reply = health_pb2_grpc.HealthStub(channel).Check(  # type: ignore[attr-defined]  # the stub declares no methods
                    health_pb2.HealthCheckRequest(), timeout=timeout
                )
            return reply.status == health_pb2.HealthCheckResponse.SERVING
        except grpc.RpcError:
            return False
    if kind == "http":
        import httpx

        try:
            ca = os.environ.get("TLS_CA_FILE")
            verify = ssl.create_default_context(cafile=ca) if ca else True
            return httpx.get(target, timeout=timeout, verify=verify).status_code == 200
        except httpx.HTTPError:
            return False
    raise SystemExit(f"unknown probe kind {kind!r}; use grpc or http")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit("usage: python -m svckit.healthcheck grpc HOST:PORT | http URL")
    sys.exit(0 if check(sys.argv[1], sys.argv[2]) else 1)
