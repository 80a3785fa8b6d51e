"""Prometheus metrics shared by every service, and the /metrics endpoint."""

from __future__ import annotations

from prometheus_client import Counter, Histogram, start_http_server

GRPC_REQUESTS = Counter(
    "grpc_server_handled_total", "gRPC calls handled, by method and status code", ["method", "code"]
)
GRPC_LATENCY = Histogram(
    "grpc_server_handling_seconds",
    "Time to handle a gRPC call",
    ["method"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
IDEMPOTENT_REPLAYS = Counter(
    "idempotency_replays_total", "Requests answered from the idempotency store", ["scope"]
)
IDEMPOTENCY_CONFLICTS = Counter(
    "idempotency_conflicts_total", "Idempotency keys refused (in use or reused)", ["scope", "reason"]
)


def serve_metrics(port: int, host: str = "127.0.0.1") -> None:
    """Expose /metrics on ``port`` (0 disables it)."""
    if port:
        start_http_server(port, addr=host)
