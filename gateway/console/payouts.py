"""The console's pay-out run screens: preview a period, start its run through a confirmation page, watch
the run until it completes, and a pay-out's page with its history.

Transport only: ``PreviewPayoutRun``, ``StartPayoutRun``, ``ListPayoutRuns``, ``GetPayoutRun``,
``ListPayouts`` and ``GetPayout``, the RPCs of the admin REST routes. Starting a run is audited before the call with the
operator's reason; the confirmation form carries a fresh action id sent as the idempotency key
(``console-payout-run-<id>``), so a double click or a resubmitted form starts one run. A running run's
page reloads itself every second (an HTTP ``Refresh`` header: the console serves no script).
"""

from __future__ import annotations

import re
from typing import Any

import grpc
from fastapi import APIRouter, Request
from fastapi.responses import Response

from gateway import payout_schemas as ps
from gateway.console import store, web
from gateway.console.sellers import (
    action_id_ok,
    audited,
    last_month,
    new_action_id,
    redirect,
    refused_page,
    rpc,
    seller_ok,
)
from gateway.console.store import Session
from svckit.gen.payments.v1 import payout_service_pb2 as pb
from svckit.money import parse_amount

router = APIRouter(include_in_schema=False)

_MAX_NAMED = 50
_SPLIT = re.compile(r"[\s,]+")
REFRESH_SECONDS = 1
_RECENT_RUNS = 10


def _named_sellers(text: str) -> tuple[list[str], str]:
    """The seller accounts typed in a form (spaces, commas or new lines between), or an error."""
    names = [n for n in _SPLIT.split(text.strip()) if n]
    if len(names) > _MAX_NAMED:
        return [], f"sellers: at most {_MAX_NAMED} (empty: every seller whose schedule fits the period)"
    bad = [n for n in names if not seller_ok(n)]
    if bad:
        return [], "sellers: not a seller account: " + bad[0][:130]
    return names, ""


def _total(run: ps.PayoutRunOut) -> list[str]:
    """What the run pays, one text per currency."""
    sums: dict[str, int] = {}
    for item in run.items:
        if not item.skip_reason and item.currency:
            sums[item.currency] = sums.get(item.currency, 0) + _minor(item.amount, item.currency)
    return [web.money_text(v, c) for c, v in sorted(sums.items())]


def _minor(text: str, currency: str) -> int:
    return parse_amount(text, currency)


async def _preview(request: Request, period: str, sellers: list[str]) -> ps.PayoutRunOut:
    reply = await rpc(
        request,
        request.app.state.upstreams.payouts.PreviewPayoutRun,
        pb.PreviewPayoutRunRequest(period=period, seller_accounts=sellers),
    )
    return ps.run_out(reply.run)


def _form_fields(source: Any) -> tuple[str, str]:
    period = str(source.get("period", "")).strip()[:16]
    return period, str(source.get("sellers", ""))[:10_000]


@router.get("/console/payout-runs")
async def runs(request: Request) -> Response:
    """The preview form; with a period, the preview of its run (nothing is stored or paid)."""
    session = await web.signed_in_session(request)
    if session is None:
        return web.to_sign_in()
    period, sellers_text = _form_fields(request.query_params)
    run_id = request.query_params.get("run_id", "").strip()[:128]
    if run_id:
        return redirect(
            f"/console/payout-runs/{run_id}" if web.ID_RULE.match(run_id) else "/console/payout-runs"
        )
    context: dict[str, Any] = {
        "period": period or last_month(),
        "sellers_text": sellers_text,
        "preview": None,
    }
    status = 200
    try:
        recent = await rpc(
            request,
            request.app.state.upstreams.payouts.ListPayoutRuns,
            pb.ListPayoutRunsRequest(page_size=_RECENT_RUNS),
        )
        context["recent"] = [ps.run_out(r) for r in recent.runs]
    except grpc.aio.AioRpcError as exc:
        context["recent_error"] = web.rpc_error_text(exc)[1]
    if period:
        names, error = _named_sellers(sellers_text)
        if error:
            context["error"], status = error, 400
        else:
            try:
                preview = await _preview(request, period, names)
                context |= {"preview": preview, "total": _total(preview)}
            except grpc.aio.AioRpcError as exc:
                context["error"], status = web.rpc_error_text(exc)[1], 400
    return web.render_page("payouts_runs.html", status, session, title="Pay-out runs", **context)


@router.post("/console/payout-runs/confirm")
async def confirm(request: Request) -> Response:
    """Step one of a run: check the form, preview again and show what will be paid; nothing moves yet."""
    acting = await web.acting_session(request)
    if isinstance(acting, Response):
        return acting
    session, form = acting
    period, sellers_text = _form_fields(form)
    names, error = _named_sellers(sellers_text)
    reason = web.operator_reason(form)
    problems = [error] if error else []
    if reason is None:
        problems.append(f"Say why (1-{store.MAX_REASON_CHARS} characters): it goes to the audit log.")
    preview = None
    if not error:
        try:
            preview = await _preview(request, period, names)
        except grpc.aio.AioRpcError as exc:
            problems.append(web.rpc_error_text(exc)[1])
    if problems or preview is None:
        return web.render_page(
            "payouts_runs.html", 400, session, title="Pay-out runs", period=period or last_month(),
            sellers_text=sellers_text, preview=preview, total=_total(preview) if preview else [],
            start_errors=problems, note=form.get("note", ""),
        )  # fmt: skip
    return web.render_page(
        "payouts_confirm.html", 200, session, title=f"Start the run of {period}?", period=period,
        sellers_text=" ".join(names), names=names, preview=preview, total=_total(preview), note=reason,
        action_id=new_action_id(),
    )  # fmt: skip


@router.post("/console/payout-runs")
async def start(request: Request) -> Response:
    """Step two: the confirmed run, through the same StartPayoutRun the REST API calls."""
    acting = await web.acting_session(request)
    if isinstance(acting, Response):
        return acting
    session, form = acting
    period, sellers_text = _form_fields(form)
    names, error = _named_sellers(sellers_text)
    reason = web.operator_reason(form)
    action_id = form.get("action_id", "")
    if error or reason is None or not action_id_ok(action_id) or not period:
        return web.message_page(
            400, "Incomplete run", "Start the run again from the preview; nothing was changed.", session
        )
    detail = f"period={period}" + (f" sellers={','.join(names)}" if names else " sellers=all")
    outcome = await audited(
        request,
        session,
        "payout.run.start",
        period,
        reason,
        rpc(
            request,
            request.app.state.upstreams.payouts.StartPayoutRun,
            pb.StartPayoutRunRequest(period=period, seller_accounts=names),
        ),
        f"console-payout-run-{action_id}",
        detail,
        describe=lambda reply: f"{detail}; run {reply.run.run_id}",
    )
    if outcome.error:
        if outcome.status == 503:
            return web.message_page(
                503,
                "Run outcome unknown",
                f"{outcome.error}. Check the pay-outs before trying again.",
                session,
            )
        return web.message_page(outcome.status, "Run not started", outcome.error, session)
    return redirect(f"/console/payout-runs/{outcome.reply.run.run_id}")


@router.get("/console/payout-runs/{run_id}")
async def run_page(run_id: str, request: Request) -> Response:
    session = await web.signed_in_session(request)
    if session is None:
        return web.to_sign_in()
    if not web.ID_RULE.match(run_id):
        return web.message_page(404, "No such run", "There is no pay-out run with this id.", session)
    payouts = request.app.state.upstreams.payouts
    try:
        run = ps.run_out(
            (await rpc(request, payouts.GetPayoutRun, pb.GetPayoutRunRequest(run_id=run_id))).run
        )
        states = await _payout_states(request, run)
    except grpc.aio.AioRpcError as exc:
        return refused_page(exc, "Cannot show this run", session)
    response = web.render_page(
        "payouts_run.html", 200, session, title=f"Pay-out run {run_id}", run=run, states=states,
        total=_total(run), refresh=REFRESH_SECONDS if run.state == "running" else 0,
    )  # fmt: skip
    if run.state == "running":
        response.headers["Refresh"] = str(REFRESH_SECONDS)
    return response


async def _payout_states(request: Request, run: ps.PayoutRunOut) -> dict[str, str]:
    """Pay-out id -> state of the run's pay-outs (one page of the period's, which holds them)."""
    if not any(i.payout_id for i in run.items):
        return {}
    reply = await rpc(
        request,
        request.app.state.upstreams.payouts.ListPayouts,
        pb.ListPayoutsRequest(period=run.period, page_size=1000),
    )
    return {p.payout_id: ps.payout_out(p).state for p in reply.payouts}


@router.get("/console/payouts/{payout_id}")
async def payout_page(payout_id: str, request: Request) -> Response:
    session = await web.signed_in_session(request)
    if session is None:
        return web.to_sign_in()
    if not web.ID_RULE.match(payout_id):
        return web.message_page(404, "No such pay-out", "There is no pay-out with this id.", session)
    try:
        reply = await rpc(
            request, request.app.state.upstreams.payouts.GetPayout, pb.GetPayoutRequest(payout_id=payout_id)
        )
    except grpc.aio.AioRpcError as exc:
        return refused_page(exc, "Cannot show this pay-out", session)
    return _payout(session, ps.payout_detail_out(reply))


def _payout(session: Session, payout: ps.PayoutDetailOut) -> Response:
    return web.render_page("payouts_payout.html", 200, session, title=f"Pay-out {payout.payout_id}", p=payout)
