"""Container health probe: ``python -m svckit.healthcheck grpc HOST:PORT`` or ``http URL``; exit 0 when healthy.

The slim image has no curl or grpc_health_probe, and Python is already there.
"""

from __future__ import annotations

import sys


def check(kind: str, target: str, timeout: float = 2.0) -> bool:
    if kind == "grpc":
        import grpc
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        try:
            with grpc.insecure_channel(target) as channel:
                reply = health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(), timeout=timeout
                )
            return reply.status == health_pb2.HealthCheckResponse.SERVING
        except grpc.RpcError:
            return False
    if kind == "http":
        import httpx

        try:
            return httpx.get(target, timeout=timeout).status_code == 200
        except httpx.HTTPError:
            return False
    raise SystemExit(f"unknown probe kind {kind!r}; use grpc or http")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit("usage: python -m svckit.healthcheck grpc HOST:PORT | http URL")
    sys.exit(0 if check(sys.argv[1], sys.argv[2]) else 1)
