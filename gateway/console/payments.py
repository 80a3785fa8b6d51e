"""The console's payment screens: search orders, an order's page (timeline, refunds, books, console
actions), refund through a confirmation page, and the review of an order held by risk.

Transport only: the RPCs the REST API calls. A refund and a review are recorded in the audit log
*before* the call, with the operator's typed reason, and the outcome is filled in after. A refund goes
through a confirmation page whose form carries a fresh action id, sent as the idempotency key, so a
double click or a resubmitted form refunds once.
"""

from __future__ import annotations

import asyncio
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, get_args
from urllib.parse import urlencode

import grpc
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from gateway import schemas
from gateway.console import order_books, store, web
from gateway.console.store import Session
from gateway.upstream import call
from svckit.context import idempotency_key_var
from svckit.errors import DomainError, ErrorKind, InvalidArgument, NotFound
from svckit.gen.payments.v1 import payment_service_pb2 as pb
from svckit.grpc_errors import from_rpc_error
from svckit.money import format_amount

router = APIRouter(include_in_schema=False)

_REFUND_REASONS = ("requested_by_customer", "duplicate", "fraudulent")
_PAYMENT_INTENT = re.compile(r"^pi_[A-Za-z0-9]{1,100}$")


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
        amount=web.money_text(o.amount_minor, o.currency),
        refunded=web.money_text(o.refunded_minor, o.currency) if o.refunded_minor else "",
        state=schemas.order_state(o.state),
        created=web.when_text(o.create_time),
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
        if params[field] and not web.ID_RULE.match(params[field]):
            raise InvalidArgument("INVALID_FILTER", f"{field}: not an id", field=field)
    if params["seller_account"] and not web.SELLER_RULE.match(params["seller_account"]):
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
        page_size=web.PAGE_SIZE,
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
    session = await web.signed_in_session(request)
    if session is None:
        return web.to_sign_in()
    params = {name: request.query_params.get(name, "").strip()[:200] for name in _FILTERS}
    if params["payment_order_id"]:
        # An order id names one order: its page is the answer.
        if not web.ID_RULE.match(params["payment_order_id"]):
            return web.render_page("payments.html", 400, session, title="Payments", params=params, states=_STATES,
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
            web.upstream_deadline(request),
        )
        rows = [_order_row(o) for o in reply.payment_orders]
        if reply.next_page_token:
            query = {k: v for k, v in params.items() if v} | {"page_token": reply.next_page_token}
            next_url = "/console/payments?" + urlencode(query)
    except DomainError as exc:
        error = exc.message
    except grpc.aio.AioRpcError as exc:
        error = web.rpc_error_text(exc)[1]
    return web.render_page("payments.html", 400 if error else 200, session, title="Payments", params=params,
                 states=_STATES, orders=rows, error=error, next_url=next_url)  # fmt: skip


async def _checkout_of_payment_intent(request: Request, psp_id: str) -> str:
    if not _PAYMENT_INTENT.match(psp_id):
        raise InvalidArgument("INVALID_FILTER", "PSP id: a PaymentIntent id (pi_...)", field="psp_id")
    try:
        reply, _ = await call(
            request.app.state.upstreams.payment.GetCheckoutByPaymentIntent,
            pb.GetCheckoutByPaymentIntentRequest(payment_intent_id=psp_id),
            web.upstream_deadline(request),
        )
    except grpc.aio.AioRpcError as exc:
        err, _text = web.rpc_error_text(exc)
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
    deadline = web.upstream_deadline(request)

    async def audited() -> list[store.AuditEntry]:
        async with web.gateway_engine(request).connect() as conn:
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
            at=web.when_text(t.create_time),
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
        "commission": web.money_text(order.commission_minor, order.currency)
        if order.commission_minor
        else "",
        "refundable": web.money_text(order.amount_minor - order.refunded_minor, order.currency),
        "can_refund": order.state
        in (pb.PAYMENT_ORDER_STATE_SUCCESS, pb.PAYMENT_ORDER_STATE_PARTIALLY_REFUNDED),
        "held": held,
        "steps": steps,
        "refunds": [
            _RefundRow(
                id=r.refund_id,
                amount=web.money_text(r.amount_minor, r.currency),
                state=pb.RefundState.Name(r.state).removeprefix("REFUND_STATE_").lower(),
                psp_reference=r.psp_reference,
                created=web.when_text(r.create_time),
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
    if not web.ID_RULE.match(order_id):
        return web.message_page(404, "No such order", "There is no payment order with this id.", session)
    try:
        context = await _order_context(request, order_id)
    except grpc.aio.AioRpcError as exc:
        err, text = web.rpc_error_text(exc)
        if err.kind is ErrorKind.NOT_FOUND:
            return web.message_page(404, "No such order", "There is no payment order with this id.", session)
        return web.message_page(503, "Cannot show this order", text, session)
    return web.render_page("order.html", status, session, title=f"Order {order_id}", **context, **extra)


@router.get("/console/payments/{order_id}")
async def order_page(order_id: str, request: Request) -> Response:
    session = await web.signed_in_session(request)
    if session is None:
        return web.to_sign_in()
    return await _order_page(request, session, order_id, notice=request.query_params.get("done", "")[:40])


@router.post("/console/payments/{order_id}/refund/confirm")
async def refund_confirm(order_id: str, request: Request) -> Response:
    """Step one of a refund: check the form and show what will happen; nothing moves yet."""
    acting = await web.acting_session(request)
    if isinstance(acting, Response):
        return acting
    session, form = acting
    reason = web.operator_reason(form)
    psp_reason = form.get("reason", "")
    problems: list[str] = []
    if reason is None:
        problems.append(f"Say why (1-{store.MAX_REASON_CHARS} characters): it goes to the audit log.")
    if psp_reason not in _REFUND_REASONS:
        problems.append("Choose a refund reason.")
    if not web.ID_RULE.match(order_id):
        return web.message_page(404, "No such order", "There is no payment order with this id.", session)
    try:
        order = (
            await call(
                request.app.state.upstreams.payment.GetPaymentOrder,
                pb.GetPaymentOrderRequest(payment_order_id=order_id),
                web.upstream_deadline(request),
            )
        )[0].payment_order
    except grpc.aio.AioRpcError as exc:
        return web.message_page(404 if from_rpc_error(exc).kind is ErrorKind.NOT_FOUND else 503,
                        "Cannot refund this order", web.rpc_error_text(exc)[1], session)  # fmt: skip
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
    return web.render_page(
        "refund_confirm.html",
        200,
        session,
        title=f"Refund {order_id}?",
        order_id=order_id,
        amount_text=format_amount(amount_minor, order.currency) if amount_minor else "",
        shown_amount=web.money_text(amount_minor or remaining, order.currency),
        full=not amount_minor,
        psp_reason=psp_reason,
        note=reason,
        action_id=secrets.token_hex(16),
    )


@router.post("/console/payments/{order_id}/refund")
async def refund(order_id: str, request: Request) -> Response:
    """Step two: the confirmed refund, through the same CreateRefund the REST API calls."""
    acting = await web.acting_session(request)
    if isinstance(acting, Response):
        return acting
    session, form = acting
    reason = web.operator_reason(form)
    action_id = form.get("action_id", "")
    psp_reason = form.get("reason", "")
    if (
        reason is None
        or psp_reason not in _REFUND_REASONS
        or len(action_id) != 32
        or not all(c in "0123456789abcdef" for c in action_id)
        or not web.ID_RULE.match(order_id)
    ):
        return web.message_page(
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
                    web.upstream_deadline(request),
                )
            )[0].payment_order
            amount_minor = schemas.parse_positive_amount(form["amount"].strip(), order.currency, "amount")
    except DomainError as exc:
        return web.message_page(400, "Invalid amount", exc.message, session)
    except grpc.aio.AioRpcError as exc:
        return web.message_page(503, "Refund not made", web.rpc_error_text(exc)[1], session)
    what = f"amount={form['amount'].strip()}" if amount_minor else "amount=all remaining"
    async with web.gateway_engine(request).begin() as conn:
        entry = await store.record(conn, session, "payment.refund", order_id, reason, detail=what)
    token = idempotency_key_var.set(f"console-refund-{action_id}")
    try:
        reply, _ = await call(
            payment.CreateRefund,
            pb.CreateRefundRequest(payment_order_id=order_id, amount_minor=amount_minor, reason=psp_reason),
            web.upstream_deadline(request),
        )
    except grpc.aio.AioRpcError as exc:
        err, text = web.rpc_error_text(exc)
        outcome, status = web.failed_outcome(err)
        async with web.gateway_engine(request).begin() as conn:
            await store.finish(conn, entry, outcome, f"{what}; {text}")
        if outcome == "unknown":
            return web.message_page(
                status, "Refund outcome unknown", f"{text}. Check the order before trying again.", session
            )
        return await _order_page(request, session, order_id, status, refund_errors=[text], form={})
    finally:
        idempotency_key_var.reset(token)
    r = reply.refund
    async with web.gateway_engine(request).begin() as conn:
        await store.finish(
            conn, entry, "ok", f"{web.money_text(r.amount_minor, r.currency)} refund {r.refund_id}"
        )
    return RedirectResponse(
        f"/console/payments/{order_id}?done=refund", status_code=303, headers=web.PAGE_HEADERS
    )


_DECISIONS = {"approve": pb.REVIEW_DECISION_APPROVE, "decline": pb.REVIEW_DECISION_DECLINE}


@router.post("/console/payments/{order_id}/review")
async def review(order_id: str, request: Request) -> Response:
    """Approve or decline an order held for risk review (ReviewPaymentOrder, as the admin REST route)."""
    acting = await web.acting_session(request)
    if isinstance(acting, Response):
        return acting
    session, form = acting
    reason = web.operator_reason(form)
    decision = form.get("decision", "")
    if not web.ID_RULE.match(order_id):
        return web.message_page(404, "No such order", "There is no payment order with this id.", session)
    if reason is None or decision not in _DECISIONS:
        problems = [f"Choose approve or decline and say why (1-{store.MAX_REASON_CHARS} characters)."]
        return await _order_page(request, session, order_id, 400, review_errors=problems)
    async with web.gateway_engine(request).begin() as conn:
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
            web.upstream_deadline(request),
        )
    except grpc.aio.AioRpcError as exc:
        err, text = web.rpc_error_text(exc)
        outcome, status = web.failed_outcome(err)
        async with web.gateway_engine(request).begin() as conn:
            await store.finish(conn, entry, outcome, text)
        if outcome == "unknown":
            return web.message_page(
                status, "Review outcome unknown", f"{text}. Check the order before trying again.", session
            )
        return await _order_page(request, session, order_id, status, review_errors=[text])
    finally:
        idempotency_key_var.reset(token)
    async with web.gateway_engine(request).begin() as conn:
        await store.finish(conn, entry, "ok")
    return RedirectResponse(
        f"/console/payments/{order_id}?done=review", status_code=303, headers=web.PAGE_HEADERS
    )
