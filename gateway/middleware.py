"""Pure ASGI middleware: request ids, idempotency keys into context, body size limit, access log."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from svckit.context import idempotency_key_var, is_metadata_value, new_request_id, request_id_var
from svckit.idempotency import MAX_KEY_LENGTH
from svckit.logging import get_logger
from svckit.redaction import redact

log = get_logger("gateway.access")

_READ_HEADERS = frozenset({"x-request-id", "idempotency-key", "content-length"})
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")

METADATA_HEADERS = {"idempotency-key": "Idempotency-Key", "x-request-id": "X-Request-Id"}
"""Headers whose values travel on to the services as gRPC metadata, which must be printable ASCII."""

RESPONSE_HEADERS_SCOPE_KEY = "gateway.response_headers"
"""Headers a handler wants on the answer whatever it turns out to be, error or not (the rate-limit
headers): set ``scope[RESPONSE_HEADERS_SCOPE_KEY] = {...}``; this middleware adds them."""


def _problem_bytes(status: int, code: str, detail: str, request_id: str, field: str | None) -> bytes:
    body = {
        "type": "https://docs.marketplace-payments.dev/problems/" + code.lower().replace("_", "-"),
        "title": code.replace("_", " ").capitalize(),
        "status": status,
        "detail": redact(detail),
        "code": code,
        "request_id": request_id,
    }
    if field:
        body["errors"] = [{"field": field, "message": detail}]
    return json.dumps(body).encode()


def _unsendable_header(headers: dict[str, str]) -> str | None:
    """The name of the first header that would become gRPC metadata but is not printable ASCII."""
    for name, shown in METADATA_HEADERS.items():
        value = headers.get(name)
        if value is not None and not is_metadata_value(value):
            return shown
    return None


class RequestContextMiddleware:
    """Accepts the caller's ``X-Request-Id`` (or makes one), echoes it, and refuses oversized bodies.

    The body limit is enforced while reading, so a 1 GB upload costs us at most ``max_body_bytes``, or the
    limit ``body_limits`` gives the request's exact path (an upload route).
    """

    def __init__(
        self, app: ASGIApp, max_body_bytes: int, body_limits: Mapping[str, int] | None = None
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.body_limits = dict(body_limits or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # Only the headers this middleware reads: a dict of all of them (Authorization, Cookie) in a
        # frame every request passes through is what tracebacks used to print.
        headers = {
            name: v.decode("latin-1")
            for k, v in scope["headers"]
            if (name := k.decode("latin-1").lower()) in _READ_HEADERS
        }
        incoming = headers.get("x-request-id", "")
        rid = incoming if _SAFE_REQUEST_ID.match(incoming) else new_request_id()
        bad_header = _unsendable_header(headers)
        key = headers.get("idempotency-key") or None
        rid_token = request_id_var.set(rid)
        key_token = idempotency_key_var.set(key)
        started = time.perf_counter()
        limit = self.body_limits.get(scope.get("path", ""), self.max_body_bytes)
        status_holder = {"status": 0}

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder["status"] = message["status"]
                message.setdefault("headers", [])
                extra = [
                    (k.lower().encode(), v.encode())
                    for k, v in scope.get(RESPONSE_HEADERS_SCOPE_KEY, {}).items()
                ]
                present = {k.lower() for k, _ in message["headers"]}
                message["headers"] = [
                    *message["headers"],
                    *(h for h in extra if h[0] not in present),
                    (b"x-request-id", rid.encode()),
                ]
            await send(message)

        try:
            if bad_header is not None:
                # Refused here, before any route: gRPC fails a call with such metadata deep inside.
                await self._reject(send_with_id, 400, "INVALID_HEADER",
                                   f"{bad_header} must be printable ASCII (0x20-0x7E)", rid, bad_header)  # fmt: skip
                return
            if key is not None and len(key) > MAX_KEY_LENGTH:
                await self._reject(send_with_id, 400, "IDEMPOTENCY_KEY_TOO_LONG",
                                   f"Idempotency-Key is {len(key)} characters; at most {MAX_KEY_LENGTH} are allowed", rid,
                                   "Idempotency-Key")  # fmt: skip
                return
            declared = headers.get("content-length")
            if declared is not None and declared.isdigit() and int(declared) > limit:
                await self._reject(send_with_id, 413, "PAYLOAD_TOO_LARGE",
                                   f"request body is larger than {limit} bytes", rid)  # fmt: skip
                return
            await self.app(scope, self._limited(receive, limit), send_with_id)
        except _BodyTooLarge:
            await self._reject(send_with_id, 413, "PAYLOAD_TOO_LARGE",
                               f"request body is larger than {limit} bytes", rid)  # fmt: skip
        finally:
            log.info(
                "http",
                method=scope.get("method"),
                path=scope.get("path"),
                status=status_holder["status"],
                ms=round((time.perf_counter() - started) * 1000, 2),
            )
            request_id_var.reset(rid_token)
            idempotency_key_var.reset(key_token)

    def _limited(self, receive: Receive, limit: int) -> Receive:
        seen = 0

        async def wrapped() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise _BodyTooLarge
            return message

        return wrapped

    @staticmethod
    async def _reject(
        send: Send, status: int, code: str, detail: str, rid: str, field: str | None = None
    ) -> None:
        body = _problem_bytes(status, code, detail, rid, field)
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/problem+json"),
                                (b"content-length", str(len(body)).encode())]})  # fmt: skip
        await send({"type": "http.response.body", "body": body})


class _BodyTooLarge(Exception):
    pass
