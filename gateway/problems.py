"""RFC 9457 problem+json: the one place where errors become HTTP responses.

Every error body has ``type``, ``title``, ``status``, ``detail``, a stable UPPER_SNAKE ``code`` (the same
reason the gRPC services use) and the ``request_id``; validation errors add ``errors`` naming each field.
"""

from __future__ import annotations

from typing import Any

import grpc
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from svckit.context import current_request_id
from svckit.db import database_error_text, database_unavailable
from svckit.errors import DomainError, ErrorKind, Internal, Unavailable
from svckit.grpc_errors import from_rpc_error
from svckit.logging import get_logger
from svckit.reasons import Reason
from svckit.redaction import redact_value

log = get_logger(__name__)

PROBLEM_JSON = "application/problem+json"
TYPE_BASE = "https://docs.marketplace-payments.dev/problems/"

_HTTP_CODES = {
    400: Reason.BAD_REQUEST,
    401: Reason.UNAUTHENTICATED,
    403: Reason.FORBIDDEN,
    404: Reason.NOT_FOUND,
    405: Reason.METHOD_NOT_ALLOWED,
    406: Reason.NOT_ACCEPTABLE,
    413: Reason.PAYLOAD_TOO_LARGE,
    415: Reason.UNSUPPORTED_MEDIA_TYPE,
    429: Reason.RATE_LIMITED,
}


class ApiProblem(Exception):
    """An error the gateway itself decides (auth, rate limit, content type, webhook signature).

    Raised anywhere in a request; rendered by :func:`install`'s handler like every other problem.
    """

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        headers: dict[str, str] | None = None,
        field: str | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.headers = headers
        self.field = field


MAX_LISTED_ERRORS = 50
"""A body with a thousand bad items gets the first fifty named, not a megabyte of errors."""


def problem(
    status: int,
    code: str,
    detail: str,
    title: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": TYPE_BASE + code.lower().replace("_", "-"),
        "title": title or code.replace("_", " ").capitalize(),
        "status": status,
        "detail": detail,
        "code": code,
        "request_id": current_request_id(),
    }
    body.update({k: v for k, v in extra.items() if v is not None})
    # Details are often built from exception or upstream text, which can quote a key, a connection URL
    # or a card number: none of that goes back to the caller.
    return JSONResponse(redact_value(body), status_code=status, media_type=PROBLEM_JSON, headers=headers)


def domain_problem(err: DomainError) -> JSONResponse:
    headers = None
    if err.reason == "IDEMPOTENCY_KEY_IN_USE":
        headers = {"Retry-After": err.metadata.get("retry_after_seconds", "1")}
    extra = {k: v for k, v in err.metadata.items() if k != "retry_after_seconds"}
    field = extra.pop("field", None)
    members: dict[str, Any] = {"metadata": extra} if extra else {}
    return problem(
        err.kind.http_status,
        err.reason,
        err.message,
        headers=headers,
        errors=[{"field": field, "message": err.message}] if field else None,
        **members,
    )


def _field_path(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    out = ""
    for p in parts:
        out += f"[{p}]" if p.isdigit() else (f".{p}" if out else p)
    return out or "body"


def install(app: FastAPI) -> None:
    @app.exception_handler(DomainError)
    async def _domain(_request: Request, exc: DomainError) -> JSONResponse:
        return domain_problem(exc)

    @app.exception_handler(ApiProblem)
    async def _api(_request: Request, exc: ApiProblem) -> JSONResponse:
        errors = [{"field": exc.field, "message": exc.detail}] if exc.field else None
        return problem(exc.status, exc.code, exc.detail, headers=exc.headers, errors=errors)

    @app.exception_handler(grpc.aio.AioRpcError)
    async def _rpc(_request: Request, exc: grpc.aio.AioRpcError) -> JSONResponse:
        err = from_rpc_error(exc)
        if err.kind is ErrorKind.PERMISSION_DENIED:
            # A service refused the gateway's own identity: our access tables and this route disagree.
            # That is a deployment fault, not the client's; the client is not told internal method names.
            log.error("upstream refused the gateway", reason=err.reason, detail=err.message)
            err = Internal(
                "UPSTREAM_REFUSED_CALLER", "the gateway may not make this call; quote the request id"
            )
        if err.kind.http_status >= 500:
            log.warning("upstream error", reason=err.reason, detail=err.message)
        return domain_problem(err)

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"field": _field_path(tuple(e.get("loc", ()))), "message": e.get("msg", "")} for e in exc.errors()
        ]
        first = errors[0] if errors else {"field": "body", "message": "invalid request"}
        return problem(
            400,
            "INVALID_REQUEST",
            f"{first['field']}: {first['message']}",
            title="Invalid request",
            errors=errors[:MAX_LISTED_ERRORS],
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, Reason.HTTP_ERROR)
        return problem(exc.status_code, code, str(exc.detail), headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unhandled(_request: Request, exc: Exception) -> JSONResponse:
        if database_unavailable(exc):  # a restart or failover under the gateway's own store: retry
            log.warning("database unavailable", error=database_error_text(exc))
            return domain_problem(
                Unavailable(
                    "DATABASE_UNAVAILABLE", "the database is unreachable or dropped the connection; retry"
                )
            )
        log.exception("unhandled error", error=repr(exc))
        return problem(500, "INTERNAL", f"internal error; quote request id {current_request_id()}")
