"""The gateway's Prometheus metrics and the middleware that counts HTTP requests by route template.

``/metrics`` is served on the HTTP port without authentication: expose it to the scraper only (it is
not routed by the public load balancer in production).
"""

from __future__ import annotations

import time

from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

HTTP_REQUESTS = Counter(
    "gateway_http_requests_total",
    "HTTP requests, by method, route template and status",
    ["method", "route", "status"],
)
HTTP_LATENCY = Histogram(
    "gateway_http_request_seconds",
    "Time to answer an HTTP request, by method and route template",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
RATE_LIMITED = Counter("gateway_rate_limited_total", "Requests refused with 429 by the per-key rate limit")
RATE_LIMITER_ERRORS = Counter(
    "gateway_rate_limiter_errors_total", "Rate-limit checks that failed because Redis could not be reached"
)
AUTH_FAILURES = Counter(
    "gateway_auth_failures_total", "Requests refused by authentication or authorisation", ["reason"]
)
WEBHOOK_SIGNATURE_FAILURES = Counter(
    "gateway_webhook_signature_failures_total", "Webhook deliveries refused for their signature", ["provider"]
)
WEBHOOK_EVENTS = Counter(
    "gateway_webhook_events_total",
    "Verified webhook events, by outcome (applied, accepted, ignored, rejected, retry)",
    ["provider", "outcome"],
)

UNMATCHED = "<unmatched>"


class HttpMetricsMiddleware:
    """Counts every request under its route template (``/v1/payments/{payment_order_id}``), never the raw
    path, so ids do not explode the label set; requests that match no route count as ``<unmatched>``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def record_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, record_status)
        finally:
            route = getattr(scope.get("route"), "path", None) or UNMATCHED
            method = scope.get("method", "")
            HTTP_REQUESTS.labels(method, route, str(status)).inc()
            HTTP_LATENCY.labels(method, route).observe(time.perf_counter() - started)


OVERLOADED = Counter(
    "gateway_overloaded_total", "Writes refused 503 OVERLOADED because too many were in flight"
)
