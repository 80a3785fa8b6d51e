"""Authentication, scope check, per-key rate limit and content-type check, in that order, before a
route reads or validates its body.

Routes opt in through their router's ``route_class=guarded(scope)``. Doing this in the route class
rather than in a FastAPI dependency matters: FastAPI parses the JSON body before it runs any
dependency, so with a dependency a caller without a key would learn about body errors (400) instead
of being told to authenticate (401), and would bypass the rate limit by sending bad JSON.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.routing import APIRoute
from fastapi.security import HTTPBearer
from sqlalchemy.exc import DBAPIError

from gateway import metrics
from gateway.apikeys import ApiKey, KeyAuthenticator
from gateway.jsonbody import JsonRequest
from gateway.middleware import RESPONSE_HEADERS_SCOPE_KEY
from gateway.problems import ApiProblem
from gateway.ratelimit import Decision, RateLimiter
from svckit.logging import get_logger

log = get_logger(__name__)

bearer_scheme = HTTPBearer(
    auto_error=False,
    scheme_name="ApiKey",
    description="An API key (`mpk_...`) as `Authorization: Bearer <key>`; see `python -m gateway apikey`.",
)
"""Only documents the scheme in OpenAPI; the route class below does the checking."""

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="marketplace-payments"'}
_JSON_TYPES = ("application/json",)
_UTF8 = ("utf-8", "utf8")


def _unauthenticated(reason: str, detail: str) -> ApiProblem:
    metrics.AUTH_FAILURES.labels(reason).inc()
    return ApiProblem(401, "UNAUTHENTICATED", detail, headers=_CHALLENGE)


def _bearer(request: Request) -> str:
    header = request.headers.get("authorization")
    if not header:
        raise _unauthenticated("missing", "send an API key as 'Authorization: Bearer <key>'")
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() != "bearer" or not credentials.strip():
        raise _unauthenticated("malformed", "the Authorization header must be 'Bearer <key>'")
    return credentials.strip()


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media in _JSON_TYPES or (media.startswith("application/") and media.endswith("+json"))


def _charset(content_type: str) -> str | None:
    for param in content_type.split(";")[1:]:
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset":
            return value.strip().strip('"').lower()
    return None


def check_content_type(content_type: str) -> None:
    if not _is_json(content_type):
        raise ApiProblem(
            415,
            "UNSUPPORTED_MEDIA_TYPE",
            f"send the body as application/json, not {content_type or 'no content type'!r}",
        )
    charset = _charset(content_type)
    if charset is not None and charset not in _UTF8:
        # JSON is UTF-8 (RFC 8259); reading it as anything else would store other text than was meant.
        raise ApiProblem(415, "UNSUPPORTED_MEDIA_TYPE", f"send the body as UTF-8, not {charset!r}")


def _client_address(request: Request) -> str:
    """The peer's address, or the proxy-reported one when uvicorn is told to trust the proxy
    (``GATEWAY_FORWARDED_ALLOW_IPS``); never a header taken on the caller's word."""
    return request.client.host if request.client else "unknown"


def _too_many_failures(request: Request, decision: Decision) -> ApiProblem:
    window = request.app.state.settings.auth_failure_window_seconds
    return ApiProblem(
        429,
        "RATE_LIMITED",
        f"more than {decision.limit} failed authentications from this address per {window:g} s; "
        f"retry after {decision.retry_after_seconds} s",
        headers={"Retry-After": str(decision.retry_after_seconds)},
    )


async def authorize(request: Request, scope: str) -> dict[str, str]:
    """Check the key, its scope and its rate budget; return the rate-limit headers for the answer
    (added by the request middleware to every answer, errors included).

    Failed authentications are budgeted per client address. An address over its budget is refused
    before its key is looked at, so a right guess answers exactly like a wrong one (429)."""
    failures: RateLimiter = request.app.state.auth_failure_limiter
    address = _client_address(request)
    blocked = await failures.check(address, count=False)
    if blocked is not None and not blocked.allowed:
        raise _too_many_failures(request, blocked)
    try:
        return await _authorize(request, scope)
    except ApiProblem as exc:
        if exc.status != 401:
            raise
        decision = await failures.check(address)
        if decision is not None and not decision.allowed:
            raise _too_many_failures(request, decision) from None
        raise


async def _authorize(request: Request, scope: str) -> dict[str, str]:
    state = request.app.state
    authenticator: KeyAuthenticator = state.authenticator
    presented = _bearer(request)
    try:
        key: ApiKey | None = await authenticator.authenticate(presented)
    except (DBAPIError, OSError) as exc:
        # Cached keys keep working during a database outage; an uncached one cannot be checked. That is
        # a transient fault of ours (503, retry), not the caller's (401) nor a bug (500).
        metrics.AUTH_FAILURES.labels("unavailable").inc()
        log.warning("API key look-up failed", error=repr(exc)[:300])
        raise ApiProblem(
            503,
            "AUTHENTICATION_UNAVAILABLE",
            "API keys cannot be checked right now; retry",
            headers={"Retry-After": "1"},
        ) from None
    if key is None:
        raise _unauthenticated("invalid", "the API key is unknown or revoked")
    if scope not in key.scopes:
        metrics.AUTH_FAILURES.labels("scope").inc()
        raise ApiProblem(403, "FORBIDDEN", f"this API key lacks the '{scope}' scope")
    request.state.api_key = key
    limiter: RateLimiter = state.rate_limiter
    decision = await limiter.check(key.id)
    if decision is None:
        return {}
    if not decision.allowed:
        raise ApiProblem(
            429,
            "RATE_LIMITED",
            f"rate limit of {decision.limit} requests per {state.settings.rate_limit_window_seconds:g} s "
            f"exceeded; retry after {decision.retry_after_seconds} s",
            headers=decision.headers(),
        )
    return decision.headers()


def guarded(scope: str) -> type[APIRoute]:
    """A route class whose routes require an API key with ``scope``."""

    class GuardedRoute(APIRoute):
        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            inner = super().get_route_handler()
            takes_body = self.body_field is not None

            async def handler(request: Request) -> Response:
                request = JsonRequest(request.scope, request.receive)
                request.scope[RESPONSE_HEADERS_SCOPE_KEY] = await authorize(request, scope)
                if takes_body:
                    body = await request.body()  # cached on the request; the inner handler reuses it
                    if body:
                        check_content_type(request.headers.get("content-type", ""))
                        await request.json()  # the strict parse, once; FastAPI reuses its result
                if request.method == "POST":
                    async with request.app.state.admission.admit():
                        return await inner(request)
                return await inner(request)

            return handler

    GuardedRoute.__name__ = f"GuardedRoute[{scope}]"
    return GuardedRoute


def admin_router(prefix: str, tag: str) -> APIRouter:
    """A router of admin-scoped routes: bearer key with the `admin` scope, and the answers that implies."""
    return APIRouter(
        prefix=prefix,
        tags=[tag],
        route_class=guarded("admin"),
        dependencies=[Depends(bearer_scheme)],
        responses={
            401: {"description": "missing, unknown or revoked API key (`UNAUTHENTICATED`)"},
            403: {"description": "the key lacks the `admin` scope (`FORBIDDEN`)"},
            429: {"description": "rate limit exceeded (`RATE_LIMITED`)"},
        },
    )
