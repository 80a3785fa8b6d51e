"""The console's sign-in and sign-out: an ``admin`` API key exchanged for a session.

The sign-in form has no session yet, so it carries a one-time token that must match a cookie set with
the form (double submit); failed attempts count in the gateway's failed-authentication limiter.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from gateway.apikeys import KeyAuthenticator
from gateway.console import store, web
from gateway.console.store import Session
from gateway.ratelimit import RateLimiter
from svckit.logging import get_logger

log = get_logger(__name__)

router = APIRouter(include_in_schema=False)


@router.get("/")
async def root() -> Response:
    return RedirectResponse("/console", status_code=307)


@router.get("/console")
async def console_home(request: Request) -> Response:
    if await web.signed_in_session(request) is None:
        return web.to_sign_in()
    return RedirectResponse("/console/payments", status_code=303, headers=web.PAGE_HEADERS)


def _sign_in_page(request: Request, status: int = 200, error: str = "") -> HTMLResponse:
    token = secrets.token_urlsafe(24)
    response = web.render_page("sign_in.html", status, title="Sign in", signin_token=token, error=error)
    response.set_cookie(
        web.SIGNIN_COOKIE,
        token,
        max_age=900,
        path="/console/sign-in",
        httponly=True,
        samesite="strict",
        secure=web.secure_cookies(web.settings_of(request)),
    )
    return response


@router.get("/console/sign-in")
async def sign_in_form(request: Request) -> Response:
    return _sign_in_page(request)


@router.post("/console/sign-in")
async def sign_in(request: Request) -> Response:
    """Exchange an ``admin`` API key for a session. Failed attempts count against the client address
    in the same limiter as failed API authentications; an address over it is refused before its key is
    looked at, so a right guess answers like a wrong one."""
    failures: RateLimiter = request.app.state.auth_failure_limiter
    address = request.client.host if request.client else "unknown"
    blocked = await failures.check(address, count=False)
    if blocked is not None and not blocked.allowed:
        return _too_many(request, blocked.retry_after_seconds)
    form = await web.read_form(request)
    cookie = request.cookies.get(web.SIGNIN_COOKIE, "")
    if (
        form is None
        or not cookie
        or not secrets.compare_digest(form.get("signin", "").encode(), cookie.encode())
    ):
        return _sign_in_page(request, 403, "The form expired; sign in again.")
    authenticator: KeyAuthenticator = request.app.state.authenticator
    key = await authenticator.authenticate(form.get("api_key", "").strip())
    if key is None or store.ADMIN_SCOPE not in key.scopes:
        decision = await failures.check(address)
        if decision is not None and not decision.allowed:
            return _too_many(request, decision.retry_after_seconds)
        # One message for unknown, revoked and payments-only keys: the form is no oracle of which.
        return _sign_in_page(request, 401, "This key cannot sign in: use an active key with the admin scope.")
    settings = web.settings_of(request)
    async with web.gateway_engine(request).begin() as conn:
        await store.purge_sessions(conn, web.SESSIONS_KEPT_FOR)
        token, _ = await store.start_session(conn, key.id, settings.console_session_ttl_seconds)
        await store.record(
            conn,
            Session(key.id, key.name, "", datetime.now(UTC)),
            "console.sign_in",
            outcome="ok",
        )
    log.info("console sign-in", key_id=key.id)
    response = RedirectResponse("/console/payments", status_code=303, headers=web.PAGE_HEADERS)
    response.set_cookie(
        web.SESSION_COOKIE,
        token,
        max_age=settings.console_session_ttl_seconds,
        path="/",
        httponly=True,
        samesite="strict",
        secure=web.secure_cookies(settings),
    )
    response.delete_cookie(web.SIGNIN_COOKIE, path="/console/sign-in")
    return response


def _too_many(request: Request, retry_after: int) -> HTMLResponse:
    response = web.message_page(
        429,
        "Too many failed sign-ins",
        f"Too many failed attempts from this address; retry in {retry_after} s.",
    )
    response.headers["Retry-After"] = str(retry_after)
    return response


@router.post("/console/sign-out")
async def sign_out(request: Request) -> Response:
    acting = await web.acting_session(request)
    if isinstance(acting, Response):
        return acting
    session, _ = acting
    async with web.gateway_engine(request).begin() as conn:
        await store.end_session(conn, request.cookies[web.SESSION_COOKIE])
        await store.record(conn, session, "console.sign_out", outcome="ok")
    response = RedirectResponse("/console/sign-in", status_code=303, headers=web.PAGE_HEADERS)
    response.delete_cookie(web.SESSION_COOKIE, path="/")
    return response
