"""Calling a service from a route: deadline, and whether the answer was an idempotent replay."""

from __future__ import annotations

from typing import Any

from fastapi import Response

from svckit.context import REPLAYED_METADATA


async def call(method: Any, request: Any, deadline_seconds: float) -> tuple[Any, bool]:
    """Invoke a unary stub method; return (response, replayed). Errors propagate as AioRpcError."""
    pending = method(request, timeout=deadline_seconds)  # a gRPC deadline, sent to the server
    response = await pending
    metadata = await pending.initial_metadata()
    replayed = any(k == REPLAYED_METADATA and v == "true" for k, v in (metadata or ()))
    return response, replayed


def mark_replayed(response: Response, replayed: bool) -> None:
    if replayed:
        response.headers["Idempotent-Replayed"] = "true"
