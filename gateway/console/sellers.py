"""The console's seller screens: the seller list, a seller's page (balances from the wallet and the
ledger, movements, pay-outs), statements (page and CSV), pause and resume pay-outs.

Transport only, like every console screen: every rule is the payment, wallet and ledger services'. Reads call
the RPCs the REST API calls; pause and resume call ``PauseSeller`` / ``ResumeSeller`` as
``PATCH /v1/admin/sellers/{id}`` does, with the operator's reason recorded in the audit log first.
The helpers at the top are shared with the pay-out and books screens.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import grpc
from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from gateway import payout_schemas as ps
from gateway.console import store, web
from gateway.console.store import Session
from gateway.upstream import call
from svckit.context import idempotency_key_var
from svckit.errors import ErrorKind
from svckit.gen.ledger.v1 import ledger_service_pb2 as lpb
from svckit.gen.payments.v1 import payout_service_pb2 as pb
from svckit.gen.wallet.v1 import wallet_service_pb2 as wpb
from svckit.grpc_errors import from_rpc_error

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 25
_SELLER_STATES = ps.SELLER_STATES
PAYABLE_PREFIX = "liability:seller_payable:"
RECEIVABLE_PREFIX = "asset:seller_receivable:"


# -- helpers shared by the seller, pay-out and books screens ------------------------------------------


async def rpc(request: Request, method: Any, message: Any) -> Any:
    """One upstream call with the gateway's deadline; its reply (errors propagate as AioRpcError)."""
    return (await call(method, message, web.upstream_deadline(request)))[0]


def refused_page(exc: grpc.aio.AioRpcError, title: str, session: Session) -> Response:
    """The service's refusal as a page: 404 for an unknown object, 400 for bad input, else 503."""
    err, text = web.rpc_error_text(exc)
    status = {ErrorKind.NOT_FOUND: 404, ErrorKind.INVALID_ARGUMENT: 400}.get(err.kind, 503)
    return web.message_page(status, title, text, session)


@dataclass(frozen=True)
class Outcome:
    """How an audited action ended: the reply, or the refusal's text and HTTP status."""

    reply: Any
    error: str = ""
    status: int = 200


async def audited(
    request: Request,
    session: Session,
    action: str,
    target: str,
    reason: str,
    call_upstream: Awaitable[Any],
    idempotency_key: str,
    detail: str = "",
    describe: Callable[[Any], str] | None = None,
) -> Outcome:
    """Record the action as ``requested``, make the call under ``idempotency_key``, record the outcome:
    nothing happens unrecorded (as the refund in ``web.py``)."""
    async with web.gateway_engine(request).begin() as conn:
        entry = await store.record(conn, session, action, target, reason, detail=detail)
    token = idempotency_key_var.set(idempotency_key)
    try:
        reply = await call_upstream
    except grpc.aio.AioRpcError as exc:
        err, text = web.rpc_error_text(exc)
        outcome, status = web.failed_outcome(err)
        async with web.gateway_engine(request).begin() as conn:
            await store.finish(conn, entry, outcome, f"{detail}; {text}" if detail else text)
        return Outcome(None, text, status)
    finally:
        idempotency_key_var.reset(token)
    async with web.gateway_engine(request).begin() as conn:
        await store.finish(conn, entry, "ok", describe(reply) if describe else detail)
    return Outcome(reply)


def action_id_ok(value: str) -> bool:
    """A confirmation form's action id: 32 lowercase hex digits (``secrets.token_hex(16)``)."""
    return len(value) == 32 and all(c in "0123456789abcdef" for c in value)


def new_action_id() -> str:
    return secrets.token_hex(16)


def last_month() -> str:
    today = datetime.now(UTC)
    year, month = (today.year, today.month - 1) if today.month > 1 else (today.year - 1, 12)
    return f"{year:04d}-{month:02d}"


def seller_ok(seller: str) -> bool:
    return bool(web.SELLER_RULE.match(seller))


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303, headers=web.PAGE_HEADERS)


# -- the seller list -------------------------------------------------------------------------------


@router.get("/console/sellers")
async def sellers(request: Request) -> Response:
    session = await web.signed_in_session(request)
    if session is None:
        return web.to_sign_in()
    prefix = request.query_params.get("seller", "").strip()[:128]
    state = request.query_params.get("state", "").strip()
    page_token = request.query_params.get("page_token", "")[:500]
    error = ""
    rows: list[ps.SellerOut] = []
    next_url = ""
    if state and state not in _SELLER_STATES:
        error = "state: not a seller state"
    else:
        try:
            reply = await rpc(
                request,
                request.app.state.upstreams.payouts.ListSellers,
                pb.ListSellersRequest(
                    seller_account_prefix=prefix,
                    state=_SELLER_STATES.get(state, pb.SELLER_STATE_UNSPECIFIED),
                    page_size=PAGE_SIZE,
                    page_token=page_token,
                ),
            )
            rows = [ps.seller_out(s) for s in reply.sellers]
            if reply.next_page_token:
                query = {k: v for k, v in (("seller", prefix), ("state", state)) if v}
                next_url = "/console/sellers?" + urlencode(query | {"page_token": reply.next_page_token})
        except grpc.aio.AioRpcError as exc:
            error = web.rpc_error_text(exc)[1]
    return web.render_page(
        "sellers_list.html", 400 if error else 200, session, title="Sellers", sellers=rows,
        prefix=prefix, state=state, states=list(_SELLER_STATES), error=error, next_url=next_url,
    )  # fmt: skip


# -- a seller's page -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Balance:
    currency: str
    available: str
    reserved: str
    owed_in_ledger: str
    debt: str


async def _ledger_balances(request: Request, prefix: str) -> dict[str, int]:
    """Currency -> balance of the accounts named ``<prefix><currency>`` (one per currency)."""
    ledger = request.app.state.upstreams.ledger
    accounts = (
        await rpc(request, ledger.ListAccounts, lpb.ListAccountsRequest(name_prefix=prefix, page_size=50))
    ).accounts
    balances = await asyncio.gather(
        *(rpc(request, ledger.GetBalance, lpb.GetBalanceRequest(account=a.name)) for a in accounts)
    )
    return {b.currency: b.balance_minor for b in balances}


async def _seller_or_none(request: Request, seller: str) -> ps.SellerOut | None:
    """The registered seller; None when not registered (its orders' money still has a wallet)."""
    try:
        reply = await rpc(
            request, request.app.state.upstreams.payouts.GetSeller, pb.GetSellerRequest(seller_account=seller)
        )
    except grpc.aio.AioRpcError as exc:
        if from_rpc_error(exc).kind is ErrorKind.NOT_FOUND:
            return None
        raise
    return ps.seller_out(reply.seller)


async def _seller_context(request: Request, seller: str, currency: str) -> dict[str, Any]:
    up = request.app.state.upstreams
    registered, wallets, payable, receivable, payouts = await asyncio.gather(
        _seller_or_none(request, seller),
        rpc(request, up.wallet.ListWallets, wpb.ListWalletsRequest(seller_id=seller, page_size=50)),
        _ledger_balances(request, f"{PAYABLE_PREFIX}{seller}/"),
        _ledger_balances(request, f"{RECEIVABLE_PREFIX}{seller}/"),
        rpc(request, up.payouts.ListPayouts, pb.ListPayoutsRequest(seller_account=seller, page_size=10)),
    )
    by_currency = {w.available.currency: w for w in wallets.wallets}
    currencies = sorted(set(by_currency) | set(payable) | set(receivable))
    balances = []
    for code in currencies:
        w = by_currency.get(code)
        balances.append(
            Balance(
                currency=code,
                available=web.money_text(w.available.amount_minor if w else 0, code),
                reserved=web.money_text(w.reserved.amount_minor if w else 0, code),
                owed_in_ledger=web.money_text(payable.get(code, 0), code),
                debt=web.money_text(receivable.get(code, 0), code) if receivable.get(code) else "",
            )
        )
    shown = currency if currency in currencies else (
        registered.payout_currency if registered and registered.payout_currency in currencies
        else (currencies[0] if currencies else "")
    )  # fmt: skip
    movements: list[Any] = []
    if shown:
        reply = await rpc(
            request,
            up.wallet.ListMovements,
            wpb.ListMovementsRequest(seller_id=seller, currency=shown, page_size=20),
        )
        movements = [
            {
                "at": web.when_text(m.create_time),
                "kind": wpb.MovementKind.Name(m.kind).removeprefix("MOVEMENT_KIND_").lower(),
                "amount": web.money_text(m.amount.amount_minor, m.amount.currency),
                "available_after": web.money_text(m.available_after.amount_minor, m.available_after.currency),
                "reference_kind": wpb.ReferenceKind.Name(m.reference.kind).removeprefix("REFERENCE_KIND_").lower(),
                "reference": m.reference.id,
            }
            for m in reply.movements
        ]  # fmt: skip
    async with web.gateway_engine(request).connect() as conn:
        audit = await store.entries(conn, target=seller, limit=10)
    return {
        "seller_account": seller,
        "seller": registered,
        "balances": balances,
        "currencies": currencies,
        "shown_currency": shown,
        "movements": movements,
        "payouts": [ps.payout_out(p) for p in payouts.payouts],
        "audit": audit,
        "period": last_month(),
    }


async def _seller_page(
    request: Request, session: Session, seller: str, status: int = 200, **extra: Any
) -> Response:
    if not seller_ok(seller):
        return web.message_page(404, "No such seller", "This is not a seller account.", session)
    currency = request.query_params.get("currency", "").strip().upper()[:3]
    try:
        context = await _seller_context(request, seller, currency)
    except grpc.aio.AioRpcError as exc:
        return refused_page(exc, "Cannot show this seller", session)
    return web.render_page(
        "sellers_seller.html", status, session, title=f"Seller {seller}", **context, **extra
    )


@router.get("/console/sellers/{seller}")
async def seller_page(seller: str, request: Request) -> Response:
    session = await web.signed_in_session(request)
    if session is None:
        return web.to_sign_in()
    return await _seller_page(request, session, seller, notice=request.query_params.get("done", "")[:20])


@router.post("/console/sellers/{seller}/{action}")
async def pause_or_resume(seller: str, action: str, request: Request) -> Response:
    """Pause (``PauseSeller``, the operator's reason as the seller's state reason) or resume
    (``ResumeSeller``) a seller's pay-outs; either way the reason goes to the audit log first."""
    acting = await web.acting_session(request)
    if isinstance(acting, Response):
        return acting
    session, form = acting
    if action not in ("pause", "resume") or not seller_ok(seller):
        return web.message_page(404, "No such action", "Nothing was changed.", session)
    reason = web.operator_reason(form)
    if reason is None:
        problem = f"Say why (1-{store.MAX_REASON_CHARS} characters): it goes to the audit log."
        return await _seller_page(request, session, seller, 400, state_errors=[problem])
    payouts = request.app.state.upstreams.payouts
    pending = (
        rpc(request, payouts.PauseSeller, pb.PauseSellerRequest(seller_account=seller, reason=reason))
        if action == "pause"
        else rpc(request, payouts.ResumeSeller, pb.ResumeSellerRequest(seller_account=seller))
    )
    outcome = await audited(
        request, session, f"seller.{action}", seller, reason, pending, f"console-{action}-{new_action_id()}"
    )
    if outcome.error:
        if outcome.status == 503:
            return web.message_page(
                503, "Outcome unknown", f"{outcome.error}. Check the seller before trying again.", session
            )
        return await _seller_page(request, session, seller, outcome.status, state_errors=[outcome.error])
    return redirect(f"/console/sellers/{seller}?done={action}")


# -- statements -------------------------------------------------------------------------------------


@router.get("/console/sellers/{seller}/statement")
async def statement(seller: str, request: Request) -> Response:
    """A seller's statement of a period (``GetStatement``, as the REST route); ``format=csv`` downloads
    the same CSV the REST API gives."""
    session = await web.signed_in_session(request)
    if session is None:
        return web.to_sign_in()
    if not seller_ok(seller):
        return web.message_page(404, "No such seller", "This is not a seller account.", session)
    period = request.query_params.get("period", "").strip()[:16] or last_month()
    currency = request.query_params.get("currency", "").strip().upper()[:3]
    try:
        reply = await rpc(
            request,
            request.app.state.upstreams.payouts.GetStatement,
            pb.GetStatementRequest(seller_account=seller, period=period, currency=currency),
        )
    except grpc.aio.AioRpcError as exc:
        return refused_page(exc, "Cannot show this statement", session)
    out = ps.statement_out(reply)
    if request.query_params.get("format") == "csv":
        return Response(
            ps.statement_csv(out),
            media_type="text/csv",
            headers=web.PAGE_HEADERS
            | {"Content-Disposition": f'attachment; filename="statement-{seller}-{out.period}.csv"'},
        )
    csv_url = "?" + urlencode({"period": out.period, "currency": out.currency, "format": "csv"})
    return web.render_page(
        "sellers_statement.html", 200, session, title=f"Statement {seller} {out.period}",
        seller_account=seller, s=out, csv_url=csv_url,
    )  # fmt: skip
