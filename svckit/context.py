"""Request-scoped values (request id, idempotency key) carried in contextvars across async calls."""

from __future__ import annotations

import contextvars
import uuid

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
idempotency_key_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "idempotency_key", default=None
)

REQUEST_ID_METADATA = "x-request-id"
IDEMPOTENCY_KEY_METADATA = "idempotency-key"
# Set by a server in its initial metadata when it answered from the idempotency store.
REPLAYED_METADATA = "idempotent-replayed"


def is_metadata_value(value: str) -> bool:
    """Whether ``value`` may be sent as a gRPC metadata value: printable ASCII only. Anything else
    makes the call fail inside gRPC (``ExecuteBatchError``) instead of with a clear refusal."""
    return value.isascii() and value.isprintable()


def new_request_id() -> str:
    return f"req_{uuid.uuid4().hex}"


def current_request_id() -> str | None:
    return request_id_var.get()
