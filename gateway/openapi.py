"""The OpenAPI document: every status code a route can answer, each error as problem+json.

FastAPI documents what a route declares, plus a 422 "Validation Error" that this gateway never sends
(validation answers 400 here). Which errors a route can answer follows from how it is built, so it is
derived once here from the document itself: the request middleware can refuse any request (400 bad header, 413, 500); a guarded
route adds 401, 403, 429 and 503 (keys, limits, upstreams), 404 when a service does not know the
resource, 415 when it takes a body, and 409/422 (idempotency key in use or reused) when it is a POST.
Descriptions a route declares are kept; every error response gets the ``Problem`` schema.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from gateway.problems import PROBLEM_JSON

PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "RFC 9457 problem details with a stable `code` clients may branch on.",
    "required": ["type", "title", "status", "detail", "code", "request_id"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "detail": {"type": "string"},
        "code": {"type": "string", "pattern": "^[A-Z][A-Z0-9_]*$", "examples": ["INVALID_REQUEST"]},
        "request_id": {"type": ["string", "null"]},
        "errors": {
            "type": "array",
            "description": "The fields at fault (`payment_orders[0].amount`, `Idempotency-Key`).",
            "items": {
                "type": "object",
                "required": ["field", "message"],
                "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
            },
        },
        "metadata": {"type": "object", "additionalProperties": {"type": "string"}},
    },
}

_ANY_ROUTE = {
    400: "bad header (`INVALID_HEADER`, `IDEMPOTENCY_KEY_TOO_LONG`) or request (`INVALID_REQUEST`)",
    413: "body larger than the limit (`PAYLOAD_TOO_LARGE`)",
    500: "a fault of ours (`INTERNAL`); quote the `request_id`",
}
_GUARDED = {
    401: "missing, malformed, unknown or revoked API key (`UNAUTHENTICATED`)",
    403: "the key lacks the route's scope (`FORBIDDEN`)",
    404: "the resource is unknown",
    429: "the key's rate limit, or this address's failed-authentication limit, is exceeded "
    "(`RATE_LIMITED`); see `Retry-After`",
    503: "a dependency is unavailable (`UPSTREAM_UNAVAILABLE`, `AUTHENTICATION_UNAVAILABLE`, "
    "`RATE_LIMITER_UNAVAILABLE`, `DATABASE_UNAVAILABLE`, `OVERLOADED`); retry after `Retry-After`",
}
_WITH_BODY = {
    400: "invalid body (`INVALID_REQUEST`, `DUPLICATE_JSON_KEY`, `INVALID_CHARACTER`, ...); "
    "`errors[].field` names it",
    415: "body is not UTF-8 `application/json` (`UNSUPPORTED_MEDIA_TYPE`)",
}
_POST = {
    409: "conflict with the resource's state or another request (the idempotency key is in use: "
    "`IDEMPOTENCY_KEY_IN_USE`, retry after `Retry-After`)",
    422: "the idempotency key was used with another body (`IDEMPOTENCY_KEY_REUSED`)",
}
_EXTRA = {
    ("/v1/webhooks/stripe", "post"): {
        403: "the payment service refused the event's signature (`INVALID_SIGNATURE`); the PSP retries",
        409: "the same event is being handled by a concurrent delivery; the PSP retries",
        503: "the payment service is unavailable; the PSP retries",
    },
}
_OWN_BODY = {("/readyz", "get", "503")}
"""Error answers that are not problems: readiness reports each check as JSON."""


def _error_codes(path: str, method: str, operation: dict[str, Any]) -> dict[int, str]:
    codes = dict(_ANY_ROUTE)
    if operation.get("security"):  # a guarded route (gateway.guard) declares the API key scheme
        codes.update(_GUARDED)
        if "requestBody" in operation:
            codes.update(_WITH_BODY)
        if method == "post":
            codes.update(_POST)
    codes.update(_EXTRA.get((path, method), {}))
    return codes


def install(app: FastAPI) -> None:
    """Make ``app.openapi()`` produce the completed document (built once, then cached)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components["Problem"] = PROBLEM_SCHEMA
        for name in ("HTTPValidationError", "ValidationError"):  # FastAPI's 422 shape; never sent here
            components.pop(name, None)
        problem_content = {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}
        for path, operations in schema["paths"].items():
            for method, operation in operations.items():
                responses = operation["responses"]
                codes = _error_codes(path, method, operation)
                if "422" in responses and 422 not in codes:
                    del responses["422"]
                for code, description in codes.items():
                    responses.setdefault(str(code), {"description": description})
                for code, response in responses.items():
                    if code[0] in "45" and (path, method, code) not in _OWN_BODY:
                        response["content"] = problem_content
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented way to replace the schema
