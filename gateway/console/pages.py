"""The console's pages and actions (transport only: every rule is the services').

Each page needs a session (cookie ``console_session``); without one a page redirects to the sign-in
page and an action is refused with 403, changing nothing. Every POST carries the session's CSRF token
(synchronizer pattern) in a hidden ``csrf`` field; the sign-in form, which has no session yet, carries
a one-time token that must match a cookie set with the form (double submit).

Actions that move money (refund, review) are recorded in the audit log *before* the call, with the
operator's typed reason, and the outcome is filled in after: nothing happens unrecorded. A refund
goes through a confirmation page whose form carries a fresh action id, sent as the idempotency key,
so a double click or a resubmitted form refunds once.

The other screens (sellers, pay-out runs, books, reconciliation, events, overview: one module each)
use this module's public helpers for sessions, pages, upstream calls and actions, so every screen
signs in, renders, answers errors and audits its actions the same way.
"""

from __future__ import annotations

import asyncio
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, get_args
from urllib.parse import parse_qs, urlencode

import grpc
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway import schemas
from gateway.apikeys import KeyAuthenticator
from gateway.config import GatewaySettings
from gateway.console import order_books, store
from gateway.console.store import Session
from gateway.ratelimit import RateLimiter
from gateway.upstream import call
from svckit.context import idempotency_key_var
from svckit.errors import DomainError, ErrorKind, InvalidArgument, NotFound
from svckit.gen.payments.v1 import payment_service_pb2 as pb
from svckit.grpc_errors import from_rpc_error
from svckit.logging import get_logger
from svckit.money import format_amount

log = get_logger(__name__)

router = APIRouter(include_in_schema=False)

SESSION_COOKIE = "console_session"
SIGNIN_COOKIE = "console_signin"
SESSIONS_KEPT_FOR = timedelta(days=1)
"""How long an expired or signed-out session stays in the table before a sign-in purges it."""
_FORM_TYPE = "application/x-www-form-urlencoded"
_REFUND_REASONS = ("requested_by_customer", "duplicate", "fraudulent")
_PAGE_SIZE = 25
ID_RULE = re.compile(schemas.ID_PATTERN)
_SELLER = re.compile(schemas.SELLER_PATTERN)
_PAYMENT_INTENT = re.compile(r"^pi_[A-Za-z0-9]{1,100}$")

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


def _settings(request: Request) -> GatewaySettings:
    return request.app.state.settings


def gateway_engine(request: Request) -> AsyncEngine:
    return request.app.state.engine


def upstream_deadline(request: Request) -> float:
    return _settings(request).upstream_timeout_seconds


def _secure_cookies(settings: GatewaySettings) -> bool:
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


async def _form(request: Request) -> dict[str, str] | None:
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
    form = await _form(request)
    if form is None:
        return message_page(
            415, "Not a form", "Send the form as the page does; nothing was changed.", session
        )
    if not secrets.compare_digest(form.get("csrf", "").encode(), session.csrf_token.encode()):
        return message_page(
            403, "Form expired", "Reload the page and try again; nothing was changed.", session
        )
    return session, form


def _client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


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


# -- sign-in and sign-out -----------------------------------------------------------------------------


@router.get("/")
async def root() -> Response:
    return RedirectResponse("/console", status_code=307)


@router.get("/console")
async def console_home(request: Request) -> Response:
    if await signed_in_session(request) is None:
        return to_sign_in()
    return RedirectResponse("/console/payments", status_code=303, headers=PAGE_HEADERS)


def _sign_in_page(request: Request, status: int = 200, error: str = "") -> HTMLResponse:
    token = secrets.token_urlsafe(24)
    response = render_page("sign_in.html", status, title="Sign in", signin_token=token, error=error)
    response.set_cookie(
        SIGNIN_COOKIE,
        token,
        max_age=900,
        path="/console/sign-in",
        httponly=True,
        samesite="strict",
        secure=_secure_cookies(_settings(request)),
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
    address = _client_address(request)
    blocked = await failures.check(address, count=False)
    if blocked is not None and not blocked.allowed:
        return _too_many(request, blocked.retry_after_seconds)
    form = await _form(request)
    cookie = request.cookies.get(SIGNIN_COOKIE, "")
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
    settings = _settings(request)
    async with gateway_engine(request).begin() as conn:
        await store.purge_sessions(conn, SESSIONS_KEPT_FOR)
        token, _ = await store.start_session(conn, key.id, settings.console_session_ttl_seconds)
        await store.record(
            conn,
            Session(key.id, key.name, "", datetime.now(UTC)),
            "console.sign_in",
            outcome="ok",
        )
    log.info("console sign-in", key_id=key.id)
    response = RedirectResponse("/console/payments", status_code=303, headers=PAGE_HEADERS)
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=settings.console_session_ttl_seconds,
        path="/",
        httponly=True,
        samesite="strict",
        secure=_secure_cookies(settings),
    )
    response.delete_cookie(SIGNIN_COOKIE, path="/console/sign-in")
    return response


def _too_many(request: Request, retry_after: int) -> HTMLResponse:
    response = message_page(
        429,
        "Too many failed sign-ins",
        f"Too many failed attempts from this address; retry in {retry_after} s.",
    )
    response.headers["Retry-After"] = str(retry_after)
    return response


@router.post("/console/sign-out")
async def sign_out(request: Request) -> Response:
    acting = await acting_session(request)
    if isinstance(acting, Response):
        return acting
    session, _ = acting
    async with gateway_engine(request).begin() as conn:
        await store.end_session(conn, request.cookies[SESSION_COOKIE])
        await store.record(conn, session, "console.sign_out", outcome="ok")
    response = RedirectResponse("/console/sign-in", status_code=303, headers=PAGE_HEADERS)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


# -- payments -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _OrderRow:
    id: str
    checkout_id: str
    seller: str
    amount: str
    refunded: str
    state: str
    created: str


def _order_row(o: pb.PaymentOrder) -> _OrderRow:
    return _OrderRow(
        id=o.payment_order_id,
        checkout_id=o.checkout_id,
        seller=o.seller_account,
        amount=money_text(o.amount_minor, o.currency),
        refunded=money_text(o.refunded_minor, o.currency) if o.refunded_minor else "",
        state=schemas.order_state(o.state),
        created=when_text(o.create_time),
    )


_STATES = list(get_args(schemas.OrderStateName))
_FILTERS = (
    "checkout_id",
    "payment_order_id",
    "psp_id",
    "seller_account",
    "buyer_id",
    "state",
    "created_gte",
    "created_lt",
)


def _parse_day_or_time(text: str, field: str) -> datetime:
    """A date (``2026-12-06``, midnight UTC) or a date and time (UTC when no offset is given)."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidArgument(
            "INVALID_FILTER", f"{field}: use YYYY-MM-DD or YYYY-MM-DDTHH:MM", field=field
        ) from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _search_request(params: dict[str, str], page_token: str) -> pb.ListPaymentOrdersRequest:
    for field in ("checkout_id", "buyer_id"):
        if params[field] and not ID_RULE.match(params[field]):
            raise InvalidArgument("INVALID_FILTER", f"{field}: not an id", field=field)
    if params["seller_account"] and not _SELLER.match(params["seller_account"]):
        raise InvalidArgument(
            "INVALID_FILTER", "seller_account: not a seller account", field="seller_account"
        )
    if params["state"] and params["state"] not in _STATES:
        raise InvalidArgument("INVALID_FILTER", "state: not a state", field="state")
    message = pb.ListPaymentOrdersRequest(
        checkout_id=params["checkout_id"],
        seller_account=params["seller_account"],
        buyer_id=params["buyer_id"],
        states=[schemas.order_state_number(params["state"])] if params["state"] else [],
        page_size=_PAGE_SIZE,
        page_token=page_token,
    )
    for field, target in (
        ("created_gte", message.create_time_from),
        ("created_lt", message.create_time_before),
    ):
        if params[field]:
            target.CopyFrom(schemas.time_bound(_parse_day_or_time(params[field], field), field))
    return message


@router.get("/console/payments")
async def payments(request: Request) -> Response:
    session = await signed_in_session(request)
    if session is None:
        return to_sign_in()
    params = {name: request.query_params.get(name, "").strip()[:200] for name in _FILTERS}
    if params["payment_order_id"]:
        # An order id names one order: its page is the answer.
        if not ID_RULE.match(params["payment_order_id"]):
            return render_page("payments.html", 400, session, title="Payments", params=params, states=_STATES,
                         orders=[], error="payment_order_id: not an id", next_url="")  # fmt: skip
        return RedirectResponse(f"/console/payments/{params['payment_order_id']}", status_code=303)
    page_token = request.query_params.get("page_token", "")[:500]
    error = ""
    rows: list[_OrderRow] = []
    next_url = ""
    try:
        if params["psp_id"]:
            # A buyer quotes the PSP's payment id (from a bank statement or receipt): its checkout's orders.
            params["checkout_id"] = await _checkout_of_payment_intent(request, params["psp_id"])
        reply, _ = await call(
            request.app.state.upstreams.payment.ListPaymentOrders,
            _search_request(params, page_token),
            upstream_deadline(request),
        )
        rows = [_order_row(o) for o in reply.payment_orders]
        if reply.next_page_token:
            query = {k: v for k, v in params.items() if v} | {"page_token": reply.next_page_token}
            next_url = "/console/payments?" + urlencode(query)
    except DomainError as exc:
        error = exc.message
    except grpc.aio.AioRpcError as exc:
        error = rpc_error_text(exc)[1]
    return render_page("payments.html", 400 if error else 200, session, title="Payments", params=params,
                 states=_STATES, orders=rows, error=error, next_url=next_url)  # fmt: skip


async def _checkout_of_payment_intent(request: Request, psp_id: str) -> str:
    if not _PAYMENT_INTENT.match(psp_id):
        raise InvalidArgument("INVALID_FILTER", "PSP id: a PaymentIntent id (pi_...)", field="psp_id")
    try:
        reply, _ = await call(
            request.app.state.upstreams.payment.GetCheckoutByPaymentIntent,
            pb.GetCheckoutByPaymentIntentRequest(payment_intent_id=psp_id),
            upstream_deadline(request),
        )
    except grpc.aio.AioRpcError as exc:
        err, _text = rpc_error_text(exc)
        if err.kind is ErrorKind.NOT_FOUND:
            raise NotFound("CHECKOUT_NOT_FOUND", "no checkout of ours was paid with this PSP id") from None
        raise
    return str(reply.payment_event.checkout_id)


@dataclass(frozen=True)
class _Step:
    at: str
    from_state: str
    to_state: str
    cause: str
    detail: str


@dataclass(frozen=True)
class _RefundRow:
    id: str
    amount: str
    state: str
    psp_reference: str
    created: str


async def _order_context(request: Request, order_id: str) -> dict[str, Any]:
    payment = request.app.state.upstreams.payment
    deadline = upstream_deadline(request)

    async def audited() -> list[store.AuditEntry]:
        async with gateway_engine(request).connect() as conn:
            return await store.entries(conn, target=order_id, limit=20)

    # The reads that need only the order id at once (its ledger transactions too), then those that
    # need the order's checkout, seller and currency or its refunds' ids (order_books), at once.
    (order_answer, _), (history_answer, _), (refunds_answer, _), audit, order_ledger = await asyncio.gather(
        call(payment.GetPaymentOrder, pb.GetPaymentOrderRequest(payment_order_id=order_id), deadline),
        call(
            payment.ListPaymentOrderHistory,
            pb.ListPaymentOrderHistoryRequest(payment_order_id=order_id),
            deadline,
        ),
        call(payment.ListRefunds, pb.ListRefundsRequest(payment_order_id=order_id, page_size=100), deadline),
        audited(),
        order_books.order_transactions(request, order_id),
    )
    order, history, refunds = order_answer.payment_order, history_answer.transitions, refunds_answer.refunds
    (checkout_answer, _), books = await asyncio.gather(
        call(payment.GetCheckout, pb.GetCheckoutRequest(checkout_id=order.checkout_id), deadline),
        order_books.books(request, order, order_books.booked_refunds(refunds), order_ledger),
    )
    checkout = checkout_answer.payment_event
    steps = [
        _Step(
            at=when_text(t.create_time),
            from_state=schemas.order_state(t.from_state) if t.from_state else "",
            to_state=schemas.order_state(t.to_state),
            cause=t.cause,
            detail=t.detail,
        )
        for t in history
    ]
    held = (
        order.state == pb.PAYMENT_ORDER_STATE_PENDING
        and bool(history)
        and history[-1].cause.startswith("risk:")
    )
    return {
        "order": order,
        "row": _order_row(order),
        "buyer": checkout.buyer,
        "items": list(order.line_items),
        "commission": money_text(order.commission_minor, order.currency) if order.commission_minor else "",
        "refundable": money_text(order.amount_minor - order.refunded_minor, order.currency),
        "can_refund": order.state
        in (pb.PAYMENT_ORDER_STATE_SUCCESS, pb.PAYMENT_ORDER_STATE_PARTIALLY_REFUNDED),
        "held": held,
        "steps": steps,
        "refunds": [
            _RefundRow(
                id=r.refund_id,
                amount=money_text(r.amount_minor, r.currency),
                state=pb.RefundState.Name(r.state).removeprefix("REFUND_STATE_").lower(),
                psp_reference=r.psp_reference,
                created=when_text(r.create_time),
            )
            for r in refunds
        ],
        "audit": audit,
        "reasons": _REFUND_REASONS,
        "books": books,
        "risk": (checkout.risk_verdict, checkout.risk_rule),
    }


async def _order_page(
    request: Request, session: Session, order_id: str, status: int = 200, **extra: Any
) -> HTMLResponse:
    if not ID_RULE.match(order_id):
        return message_page(404, "No such order", "There is no payment order with this id.", session)
    try:
        context = await _order_context(request, order_id)
    except grpc.aio.AioRpcError as exc:
        err, text = rpc_error_text(exc)
        if err.kind is ErrorKind.NOT_FOUND:
            return message_page(404, "No such order", "There is no payment order with this id.", session)
        return message_page(503, "Cannot show this order", text, session)
    return render_page("order.html", status, session, title=f"Order {order_id}", **context, **extra)


@router.get("/console/payments/{order_id}")
async def order_page(order_id: str, request: Request) -> Response:
    session = await signed_in_session(request)
    if session is None:
        return to_sign_in()
    return await _order_page(request, session, order_id, notice=request.query_params.get("done", "")[:40])


def operator_reason(form: dict[str, str]) -> str | None:
    reason = " ".join(form.get("note", "").split())
    return reason if 0 < len(reason) <= store.MAX_REASON_CHARS else None


@router.post("/console/payments/{order_id}/refund/confirm")
async def refund_confirm(order_id: str, request: Request) -> Response:
    """Step one of a refund: check the form and show what will happen; nothing moves yet."""
    acting = await acting_session(request)
    if isinstance(acting, Response):
        return acting
    session, form = acting
    reason = operator_reason(form)
    psp_reason = form.get("reason", "")
    problems: list[str] = []
    if reason is None:
        problems.append(f"Say why (1-{store.MAX_REASON_CHARS} characters): it goes to the audit log.")
    if psp_reason not in _REFUND_REASONS:
        problems.append("Choose a refund reason.")
    if not ID_RULE.match(order_id):
        return message_page(404, "No such order", "There is no payment order with this id.", session)
    try:
        order = (
            await call(
                request.app.state.upstreams.payment.GetPaymentOrder,
                pb.GetPaymentOrderRequest(payment_order_id=order_id),
                upstream_deadline(request),
            )
        )[0].payment_order
    except grpc.aio.AioRpcError as exc:
        return message_page(404 if from_rpc_error(exc).kind is ErrorKind.NOT_FOUND else 503,
                        "Cannot refund this order", rpc_error_text(exc)[1], session)  # fmt: skip
    amount_text = form.get("amount", "").strip()
    amount_minor = 0
    if amount_text:
        try:
            amount_minor = schemas.parse_positive_amount(amount_text, order.currency, "amount")
        except DomainError as exc:
            problems.append(exc.message)
    remaining = order.amount_minor - order.refunded_minor
    if problems:
        return await _order_page(request, session, order_id, 400, refund_errors=problems, form=form)
    return render_page(
        "refund_confirm.html",
        200,
        session,
        title=f"Refund {order_id}?",
        order_id=order_id,
        amount_text=format_amount(amount_minor, order.currency) if amount_minor else "",
        shown_amount=money_text(amount_minor or remaining, order.currency),
        full=not amount_minor,
        psp_reason=psp_reason,
        note=reason,
        action_id=secrets.token_hex(16),
    )


@router.post("/console/payments/{order_id}/refund")
async def refund(order_id: str, request: Request) -> Response:
    """Step two: the confirmed refund, through the same CreateRefund the REST API calls."""
    acting = await acting_session(request)
    if isinstance(acting, Response):
        return acting
    session, form = acting
    reason = operator_reason(form)
    action_id = form.get("action_id", "")
    psp_reason = form.get("reason", "")
    if (
        reason is None
        or psp_reason not in _REFUND_REASONS
        or len(action_id) != 32
        or not all(c in "0123456789abcdef" for c in action_id)
        or not ID_RULE.match(order_id)
    ):
        return message_page(
            400,
            "Incomplete refund",
            "Start the refund again from the order's page; nothing was changed.",
            session,
        )
    payment = request.app.state.upstreams.payment
    try:
        amount_minor = 0
        if form.get("amount", "").strip():
            order = (
                await call(
                    payment.GetPaymentOrder,
                    pb.GetPaymentOrderRequest(payment_order_id=order_id),
                    upstream_deadline(request),
                )
            )[0].payment_order
            amount_minor = schemas.parse_positive_amount(form["amount"].strip(), order.currency, "amount")
    except DomainError as exc:
        return message_page(400, "Invalid amount", exc.message, session)
    except grpc.aio.AioRpcError as exc:
        return message_page(503, "Refund not made", rpc_error_text(exc)[1], session)
    what = f"amount={form['amount'].strip()}" if amount_minor else "amount=all remaining"
    async with gateway_engine(request).begin() as conn:
        entry = await store.record(conn, session, "payment.refund", order_id, reason, detail=what)
    token = idempotency_key_var.set(f"console-refund-{action_id}")
    try:
        reply, _ = await call(
            payment.CreateRefund,
            pb.CreateRefundRequest(payment_order_id=order_id, amount_minor=amount_minor, reason=psp_reason),
            upstream_deadline(request),
        )
    except grpc.aio.AioRpcError as exc:
        err, text = rpc_error_text(exc)
        outcome, status = failed_outcome(err)
        async with gateway_engine(request).begin() as conn:
            await store.finish(conn, entry, outcome, f"{what}; {text}")
        if outcome == "unknown":
            return message_page(
                status, "Refund outcome unknown", f"{text}. Check the order before trying again.", session
            )
        return await _order_page(request, session, order_id, status, refund_errors=[text], form={})
    finally:
        idempotency_key_var.reset(token)
    r = reply.refund
    async with gateway_engine(request).begin() as conn:
        await store.finish(
            conn, entry, "ok", f"{money_text(r.amount_minor, r.currency)} refund {r.refund_id}"
        )
    return RedirectResponse(
        f"/console/payments/{order_id}?done=refund", status_code=303, headers=PAGE_HEADERS
    )


_DECISIONS = {"approve": pb.REVIEW_DECISION_APPROVE, "decline": pb.REVIEW_DECISION_DECLINE}


@router.post("/console/payments/{order_id}/review")
async def review(order_id: str, request: Request) -> Response:
    """Approve or decline an order held for risk review (ReviewPaymentOrder, as the admin REST route)."""
    acting = await acting_session(request)
    if isinstance(acting, Response):
        return acting
    session, form = acting
    reason = operator_reason(form)
    decision = form.get("decision", "")
    if not ID_RULE.match(order_id):
        return message_page(404, "No such order", "There is no payment order with this id.", session)
    if reason is None or decision not in _DECISIONS:
        problems = [f"Choose approve or decline and say why (1-{store.MAX_REASON_CHARS} characters)."]
        return await _order_page(request, session, order_id, 400, review_errors=problems)
    async with gateway_engine(request).begin() as conn:
        entry = await store.record(conn, session, f"payment.review.{decision}", order_id, reason)
    token = idempotency_key_var.set(f"console-review-{secrets.token_hex(16)}")
    try:
        await call(
            request.app.state.upstreams.payment.ReviewPaymentOrder,
            pb.ReviewPaymentOrderRequest(
                payment_order_id=order_id,
                decision=_DECISIONS[decision],
                reviewer=f"{session.key_name} ({session.key_id})",
                note=reason,
            ),
            upstream_deadline(request),
        )
    except grpc.aio.AioRpcError as exc:
        err, text = rpc_error_text(exc)
        outcome, status = failed_outcome(err)
        async with gateway_engine(request).begin() as conn:
            await store.finish(conn, entry, outcome, text)
        if outcome == "unknown":
            return message_page(
                status, "Review outcome unknown", f"{text}. Check the order before trying again.", session
            )
        return await _order_page(request, session, order_id, status, review_errors=[text])
    finally:
        idempotency_key_var.reset(token)
    async with gateway_engine(request).begin() as conn:
        await store.finish(conn, entry, "ok")
    return RedirectResponse(
        f"/console/payments/{order_id}?done=review", status_code=303, headers=PAGE_HEADERS
    )


# -- audit --------------------------------------------------------------------------------------------


@router.get("/console/audit")
async def audit(request: Request) -> Response:
    session = await signed_in_session(request)
    if session is None:
        return to_sign_in()
    before = request.query_params.get("before", "")
    before_id = int(before) if before.isdigit() and len(before) < 19 else None
    target = request.query_params.get("target", "").strip()[:200]
    async with gateway_engine(request).connect() as conn:
        rows = await store.entries(conn, target=target or None, before_id=before_id, limit=_PAGE_SIZE + 1)
    next_url = ""
    if len(rows) > _PAGE_SIZE:
        rows = rows[:_PAGE_SIZE]
        next_url = "/console/audit?" + urlencode(
            {k: v for k, v in (("target", target), ("before", rows[-1].id)) if v}
        )
    return render_page(
        "audit.html", 200, session, title="Audit log", entries=rows, target=target, next_url=next_url
    )
