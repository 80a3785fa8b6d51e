"""What every console screen shares: sessions, forms and their CSRF checks, rendering, upstream errors,
and the outcome of an audited action (transport only: every rule is the services').

Each page needs a session (cookie ``console_session``); without one a page redirects to the sign-in
page and an action is refused with 403, changing nothing. Every POST carries the session's CSRF token
(synchronizer pattern) in a hidden ``csrf`` field; the sign-in form, which has no session yet, carries
a one-time token that must match a cookie set with the form (double submit) (``signin.py``).

Actions that move money are recorded in the audit log *before* the call, with the operator's typed
reason, and the outcome is filled in after (``failed_outcome``): nothing happens unrecorded.

The screens (sign-in, payments, audit, sellers, pay-out runs, books, reconciliation, events, overview:
one module each) use these helpers, so every screen signs in, renders, answers errors and audits its
actions the same way.
"""

from __future__ import annotations

import re
import secrets
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs

import grpc
from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway import schemas
from gateway.config import GatewaySettings
from gateway.console import store
from gateway.console.store import Session
from svckit.errors import DomainError, ErrorKind
from svckit.grpc_errors import from_rpc_error
from svckit.money import format_amount

SESSION_COOKIE = "console_session"
SIGNIN_COOKIE = "console_signin"
SESSIONS_KEPT_FOR = timedelta(days=1)
"""How long an expired or signed-out session stays in the table before a sign-in purges it."""
_FORM_TYPE = "application/x-www-form-urlencoded"
PAGE_SIZE = 25
"""Rows per page of a list screen."""
ID_RULE = re.compile(schemas.ID_PATTERN)
SELLER_RULE = re.compile(schemas.SELLER_PATTERN)

# No script at all, styles only inline, forms only to ourselves, never framed, never cached.
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
}

templates = Environment(
    loader=PackageLoader("gateway", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
)


# -- plumbing ------------------------------------------------------------------------------------------


def settings_of(request: Request) -> GatewaySettings:
    return request.app.state.settings


def gateway_engine(request: Request) -> AsyncEngine:
    return request.app.state.engine


def upstream_deadline(request: Request) -> float:
    return settings_of(request).upstream_timeout_seconds


def secure_cookies(settings: GatewaySettings) -> bool:
    """Secure when the gateway serves TLS itself or is reached over https through a proxy."""
    return settings.http_tls_cert_file is not None or (settings.public_url or "").startswith("https://")


def render_page(
    template: str, status: int = 200, session: Session | None = None, **context: Any
) -> HTMLResponse:
    html = templates.get_template(f"console/{template}").render(session=session, **context)
    return HTMLResponse(html, status_code=status, headers=PAGE_HEADERS)


def message_page(status: int, title: str, detail: str, session: Session | None = None) -> HTMLResponse:
    return render_page("message.html", status, session=session, title=title, detail=detail)


async def signed_in_session(request: Request) -> Session | None:
    token = request.cookies.get(SESSION_COOKIE, "")
    if not token or len(token) > 100:
        return None
    async with gateway_engine(request).connect() as conn:
        return await store.find_session(conn, token)


def to_sign_in() -> RedirectResponse:
    return RedirectResponse("/console/sign-in", status_code=303, headers=PAGE_HEADERS)


async def read_form(request: Request) -> dict[str, str] | None:
    """The urlencoded form, one value per name (the first); None when the body is not a form."""
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media != _FORM_TYPE:
        return None
    try:
        text = (await request.body()).decode("utf-8")
        fields = parse_qs(text, keep_blank_values=True, max_num_fields=40, strict_parsing=False)
    except (UnicodeDecodeError, ValueError):
        return None
    return {name: values[0] for name, values in fields.items()}


async def acting_session(request: Request) -> tuple[Session, dict[str, str]] | Response:
    """The session and form of an action, or the refusal: no session, not a form, wrong CSRF token."""
    session = await signed_in_session(request)
    if session is None:
        return message_page(403, "Signed out", "Sign in again; nothing was changed.")
    form = await read_form(request)
    if form is None:
        return message_page(
            415, "Not a form", "Send the form as the page does; nothing was changed.", session
        )
    if not secrets.compare_digest(form.get("csrf", "").encode(), session.csrf_token.encode()):
        return message_page(
            403, "Form expired", "Reload the page and try again; nothing was changed.", session
        )
    return session, form


def money_text(minor: int, currency: str) -> str:
    return f"{format_amount(minor, currency)} {currency}"


def when_text(ts: Any) -> str:
    text = schemas.timestamp(ts)
    return text.replace("T", " ")[:19] + " UTC" if text else ""


def rpc_error_text(exc: grpc.aio.AioRpcError) -> tuple[DomainError, str]:
    err = from_rpc_error(exc)
    return err, f"{err.reason}: {err.message}"


_REFUSALS = frozenset(
    {
        ErrorKind.INVALID_ARGUMENT,
        ErrorKind.PERMISSION_DENIED,
        ErrorKind.NOT_FOUND,
        ErrorKind.ALREADY_EXISTS,
        ErrorKind.FAILED_PRECONDITION,
        ErrorKind.UNPROCESSABLE,
    }
)


def failed_outcome(err: DomainError) -> tuple[str, int]:
    """(audit outcome, HTTP status) of a failed action. Only a refusal is known to have changed
    nothing; after a timeout or an unavailable service the action may have happened."""
    return ("refused", 409) if err.kind in _REFUSALS else ("unknown", 503)


def operator_reason(form: dict[str, str]) -> str | None:
    """The reason an operator typed for an action (whitespace folded), or None when empty or too long."""
    reason = " ".join(form.get("note", "").split())
    return reason if 0 < len(reason) <= store.MAX_REASON_CHARS else None
