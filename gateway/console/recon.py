"""The console's reconciliation screens: settlement runs and their reports, the exceptions queue, a
mismatch with its field differences and history, and the queue's actions (assign, annotate, resolve one
or many), all over recon.v1.ReconService as the gateway's REST routes call it.

Every action is a form with the session's CSRF token, recorded in the audit log before the call (one
entry per mismatch, so a mismatch's page lists what the console did to it) and finished after. A resolve
form carries a fresh action id sent as the idempotency key, so a double submit resolves once.
"""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlencode

import grpc
from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from gateway.console import store
from gateway.console.store import Session
from gateway.console.web import (
    ID_RULE,
    PAGE_HEADERS,
    acting_session,
    failed_outcome,
    gateway_engine,
    message_page,
    operator_reason,
    render_page,
    rpc_error_text,
    signed_in_session,
    to_sign_in,
    upstream_deadline,
    when_text,
)
from gateway.upstream import call
from svckit.context import idempotency_key_var
from svckit.errors import ErrorKind
from svckit.gen.recon.v1 import recon_service_pb2 as pb
from svckit.money import format_amount

router = APIRouter(include_in_schema=False)

_BASE = "/console/reconciliation"
_PAGE_SIZE = 50
# The queue's vocabulary (docs/reconciliation.md); anything else in a filter is refused, not passed on.
_CLASSIFICATIONS = ("auto_fixable", "manual", "unclassified")
_MISMATCH_STATES = ("open", "auto_fixed", "resolved")
_RESOLUTIONS = ("adjusted_in_ledger", "written_off", "psp_contacted", "false_positive")
_CODE = re.compile(r"^[A-Z][A-Z_]{0,63}$")
_ACTION_ID = re.compile(r"^[0-9a-f]{32}$")
_MAX_BULK = 100


def _amount(minor: int, currency: str) -> str:
    try:
        return f"{format_amount(minor, currency.upper())} {currency.upper()}"
    except (KeyError, ValueError):  # a currency our table does not know: show what the file said
        return f"{minor} (minor units) {currency}"


def _actor(session: Session) -> str:
    return f"{session.key_name} ({session.key_id})"


def _recon(request: Request) -> Any:
    return request.app.state.upstreams.recon


# -- runs ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _RunRow:
    id: str
    kind: str
    state: str
    created: str
    finished: str
    mismatches: int
    ok: bool


_KINDS = {
    pb.RECONCILIATION_RUN_KIND_SETTLEMENT_FILE: "settlement file",
    pb.RECONCILIATION_RUN_KIND_WALLET_LEDGER: "wallets vs ledger",
}


@router.get(_BASE)
async def runs(request: Request) -> Response:
    session = await signed_in_session(request)
    if session is None:
        return to_sign_in()
    page_token = request.query_params.get("page_token", "")[:2048]
    rows: list[_RunRow] = []
    error = next_url = ""
    try:
        reply, _ = await call(
            _recon(request).ListReconciliationRuns,
            pb.ListReconciliationRunsRequest(page_size=25, page_token=page_token),
            upstream_deadline(request),
        )
        rows = [
            _RunRow(
                id=r.run_id,
                kind=_KINDS.get(r.kind, "other"),
                state=pb.ReconciliationRunState.Name(r.state)
                .removeprefix("RECONCILIATION_RUN_STATE_")
                .lower(),
                created=when_text(r.create_time),
                finished=when_text(r.finish_time) if r.HasField("finish_time") else "",
                mismatches=r.mismatch_count,
                ok=r.ok,
            )
            for r in reply.runs
        ]
        if reply.next_page_token:
            next_url = f"{_BASE}?" + urlencode({"page_token": reply.next_page_token})
    except grpc.aio.AioRpcError as exc:
        error = rpc_error_text(exc)[1]
    return render_page("recon_runs.html", 503 if error else 200, session, title="Reconciliation", runs=rows,
                 error=error, next_url=next_url)  # fmt: skip


@dataclass(frozen=True)
class _TotalRow:
    key: str
    psp_gross: str
    psp_fee: str
    psp_net: str
    psp_rows: int
    ours_gross: str
    ours_fee: str


def _totals(report: dict[str, Any]) -> list[_TotalRow]:
    """The PSP's totals per currency and category next to what we booked in that currency."""
    psp: dict[str, dict[str, int]] = report.get("psp_totals") or {}
    ours: dict[str, dict[str, int]] = report.get("booked_totals") or {}
    rows = []
    for key in sorted(psp):
        currency = key.split(":", 1)[0]
        t = psp[key]
        o = ours.get(currency, {})
        rows.append(
            _TotalRow(
                key=key,
                psp_gross=_amount(t.get("gross", 0), currency),
                psp_fee=_amount(t.get("fee", 0), currency),
                psp_net=_amount(t.get("net", 0), currency),
                psp_rows=t.get("rows", 0),
                ours_gross=_amount(o["gross"], currency) if "gross" in o else "—",
                ours_fee=_amount(o["fee"], currency) if "fee" in o else "—",
            )
        )
    for currency in sorted(set(ours) - {k.split(":", 1)[0] for k in psp}):
        o = ours[currency]
        rows.append(_TotalRow(currency, "—", "—", "—", 0, _amount(o.get("gross", 0), currency),
                              _amount(o.get("fee", 0), currency)))  # fmt: skip
    return rows


@router.get(_BASE + "/runs/{run_id}")
async def run_report(run_id: str, request: Request) -> Response:
    session = await signed_in_session(request)
    if session is None:
        return to_sign_in()
    if not ID_RULE.match(run_id):
        return message_page(404, "No such run", "There is no settlement run with this id.", session)
    try:
        reply, _ = await call(
            _recon(request).GetSettlementRun,
            pb.GetSettlementRunRequest(run_id=run_id),
            upstream_deadline(request),
        )
    except grpc.aio.AioRpcError as exc:
        err, text = rpc_error_text(exc)
        if err.kind is ErrorKind.NOT_FOUND:
            return message_page(404, "No such run", "There is no settlement run with this id.", session)
        return message_page(503, "Cannot show this run", text, session)
    r = reply.report
    full = json.loads(r.report_json) if r.report_json else {}
    counts = [
        ("Rows read", r.rows_read),
        ("Matched", r.matched),
        ("Booked in the ledger", r.booked),
        ("Already counted by an earlier file", r.already_counted),
        ("Pending (inside the grace period)", r.pending),
        ("Auto-fixed", r.auto_fixed),
        ("Malformed rows", r.row_error_count),
    ]
    return render_page(
        "recon_run.html",
        200,
        session,
        title=f"Run {run_id}",
        report=r,
        counts=counts,
        by_code=sorted(r.mismatches_by_code.items()),
        by_class=sorted(r.open_by_classification.items()),
        totals=_totals(full),
        row_errors=list(r.row_errors),
    )


# -- the queue ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _MismatchRow:
    id: str
    run_id: str
    code: str
    classification: str
    state: str
    reference: str
    row: str
    amount: str
    assignee: str
    resolution: str
    created: str


def _mismatch_row(m: pb.Mismatch) -> _MismatchRow:
    return _MismatchRow(
        id=m.mismatch_id,
        run_id=m.run_id,
        code=m.code,
        classification=m.classification,
        state=m.state,
        reference=m.our_reference,
        row=m.balance_transaction_id,
        amount=_amount(m.amount_minor, m.currency),
        assignee=m.assignee,
        resolution=m.resolution_code,
        created=when_text(m.create_time),
    )


_QUEUE_FILTERS = ("run_id", "code", "classification", "state", "min_amount_minor")


def _queue_request(params: dict[str, str], page_token: str) -> pb.ListMismatchesRequest | str:
    """The ListMismatches request of the filters, or what is wrong with them."""
    if params["run_id"] and not ID_RULE.match(params["run_id"]):
        return "run: not a run id"
    if params["code"] and not _CODE.match(params["code"]):
        return "code: upper-case letters and _ (e.g. AMOUNT_DIFFERS)"
    if params["classification"] and params["classification"] not in _CLASSIFICATIONS:
        return "classification: not a classification"
    if params["state"] and params["state"] not in _MISMATCH_STATES:
        return "state: not a state"
    amount = params["min_amount_minor"]
    if amount and not (amount.isdigit() and len(amount) < 19):
        return "amount at least: a whole number of minor units (cents), e.g. 500"
    return pb.ListMismatchesRequest(
        run_id=params["run_id"],
        code=params["code"],
        classification=params["classification"],
        state=params["state"],
        min_amount_minor=int(amount or 0),
        page_size=_PAGE_SIZE,
        page_token=page_token,
    )


@router.get(_BASE + "/mismatches")
async def queue(request: Request) -> Response:
    session = await signed_in_session(request)
    if session is None:
        return to_sign_in()
    params = {name: request.query_params.get(name, "").strip()[:200] for name in _QUEUE_FILTERS}
    if "state" not in request.query_params:
        params["state"] = "open"  # the queue is what is left to do, unless asked otherwise
    page_token = request.query_params.get("page_token", "")[:2048]
    rows: list[_MismatchRow] = []
    next_url = ""
    message = _queue_request(params, page_token)
    error = message if isinstance(message, str) else ""
    status = 400 if error else 200
    if isinstance(message, pb.ListMismatchesRequest):
        try:
            reply, _ = await call(_recon(request).ListMismatches, message, upstream_deadline(request))
            rows = [_mismatch_row(m) for m in reply.mismatches]
            if reply.next_page_token:
                query = {k: v for k, v in params.items() if v} | {"page_token": reply.next_page_token}
                next_url = f"{_BASE}/mismatches?" + urlencode(query)
        except grpc.aio.AioRpcError as exc:
            err, error = rpc_error_text(exc)
            status = 400 if err.kind is ErrorKind.INVALID_ARGUMENT else 503
    return render_page(
        "recon_queue.html",
        status,
        session,
        title="Mismatches",
        params=params,
        classifications=_CLASSIFICATIONS,
        states=_MISMATCH_STATES,
        resolutions=_RESOLUTIONS,
        mismatches=rows,
        error=error,
        next_url=next_url,
        action_id=secrets.token_hex(16),
        done=request.query_params.get("done", "")[:10],
    )


async def _mismatch_page(
    request: Request, session: Session, mismatch_id: str, status: int = 200, **extra: Any
) -> Response:
    if not ID_RULE.match(mismatch_id):
        return message_page(404, "No such mismatch", "There is no mismatch with this id.", session)
    try:
        reply, _ = await call(
            _recon(request).GetMismatch,
            pb.GetMismatchRequest(mismatch_id=mismatch_id),
            upstream_deadline(request),
        )
    except grpc.aio.AioRpcError as exc:
        err, text = rpc_error_text(exc)
        if err.kind is ErrorKind.NOT_FOUND:
            return message_page(404, "No such mismatch", "There is no mismatch with this id.", session)
        return message_page(503, "Cannot show this mismatch", text, session)
    m = reply.mismatch
    async with gateway_engine(request).connect() as conn:
        audit = await store.entries(conn, target=mismatch_id, limit=20)
    return render_page(
        "recon_mismatch.html",
        status,
        session,
        title=f"Mismatch {mismatch_id}",
        m=m,
        row=_mismatch_row(m),
        differences=list(m.differences),
        actions=[(a.actor, a.action, a.detail, when_text(a.create_time)) for a in reply.actions],
        audit=audit,
        resolutions=_RESOLUTIONS,
        action_id=secrets.token_hex(16),
        **extra,
    )


@router.get(_BASE + "/mismatches/{mismatch_id}")
async def mismatch(mismatch_id: str, request: Request) -> Response:
    session = await signed_in_session(request)
    if session is None:
        return to_sign_in()
    return await _mismatch_page(
        request, session, mismatch_id, notice=request.query_params.get("done", "")[:10]
    )


# -- actions ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Failure:
    refused: bool
    text: str


async def _act(
    request: Request,
    session: Session,
    audit_action: str,
    targets: list[str],
    reason: str,
    detail: str,
    rpc: Any,
    message: Any,
    idempotency_key: str,
) -> _Failure | None:
    """Record, call, finish. Returns None when the service did it, else what went wrong: a refusal (the
    service said no, nothing changed) or an unknown outcome (timeout, service down), recorded as such."""
    async with gateway_engine(request).begin() as conn:
        entries = [await store.record(conn, session, audit_action, t, reason, detail=detail) for t in targets]
    token = idempotency_key_var.set(idempotency_key)
    try:
        await call(rpc, message, upstream_deadline(request))
    except grpc.aio.AioRpcError as exc:
        err, text = rpc_error_text(exc)
        outcome, _ = failed_outcome(err)
        async with gateway_engine(request).begin() as conn:
            for entry in entries:
                await store.finish(conn, entry, outcome, f"{detail}; {text}" if detail else text)
        return _Failure(outcome == "refused", text if outcome == "refused" else
                        f"{text}. The outcome is unknown: check the mismatch before trying again.")  # fmt: skip
    finally:
        idempotency_key_var.reset(token)
    async with gateway_engine(request).begin() as conn:
        for entry in entries:
            await store.finish(conn, entry, "ok", detail)
    return None


async def _failure_page(request: Request, session: Session, mismatch_id: str, failed: _Failure) -> Response:
    if failed.refused:  # the mismatch's page again, with the service's reason on it
        return await _mismatch_page(request, session, mismatch_id, 409, errors=[failed.text])
    # recon did not answer: its page could not be shown either, so say it plainly.
    return message_page(503, "Outcome unknown", failed.text, session)


def _done(mismatch_id: str, what: str) -> RedirectResponse:
    return RedirectResponse(
        f"{_BASE}/mismatches/{mismatch_id}?done={what}", status_code=303, headers=PAGE_HEADERS
    )


@router.post(_BASE + "/mismatches/{mismatch_id}/assign")
async def assign(mismatch_id: str, request: Request) -> Response:
    acting = await acting_session(request)
    if isinstance(acting, Response):
        return acting
    session, form = acting
    if not ID_RULE.match(mismatch_id):
        return message_page(404, "No such mismatch", "There is no mismatch with this id.", session)
    assignee = " ".join(form.get("assignee", "").split())
    if not 0 < len(assignee) <= 200:
        return await _mismatch_page(request, session, mismatch_id, 400,
                                    errors=["Name who takes it (1-200 characters)."])  # fmt: skip
    failed = await _act(
        request, session, "recon.assign", [mismatch_id], "", f"assignee={assignee}",
        _recon(request).AssignMismatch,
        pb.AssignMismatchRequest(mismatch_id=mismatch_id, assignee=assignee, actor=_actor(session)),
        f"console-assign-{secrets.token_hex(16)}",
    )  # fmt: skip
    if failed:
        return await _failure_page(request, session, mismatch_id, failed)
    return _done(mismatch_id, "assign")


@router.post(_BASE + "/mismatches/{mismatch_id}/annotate")
async def annotate(mismatch_id: str, request: Request) -> Response:
    acting = await acting_session(request)
    if isinstance(acting, Response):
        return acting
    session, form = acting
    if not ID_RULE.match(mismatch_id):
        return message_page(404, "No such mismatch", "There is no mismatch with this id.", session)
    note = operator_reason(form)
    if note is None:
        return await _mismatch_page(request, session, mismatch_id, 400,
                                    errors=[f"Write the note (1-{store.MAX_REASON_CHARS} characters)."])  # fmt: skip
    failed = await _act(
        request, session, "recon.annotate", [mismatch_id], note, "",
        _recon(request).AnnotateMismatch,
        pb.AnnotateMismatchRequest(mismatch_id=mismatch_id, note=note, actor=_actor(session)),
        f"console-annotate-{secrets.token_hex(16)}",
    )  # fmt: skip
    if failed:
        return await _failure_page(request, session, mismatch_id, failed)
    return _done(mismatch_id, "annotate")


def _resolve_form(form: dict[str, str]) -> tuple[str, str, str] | list[str]:
    """(resolution code, reason, action id) of a resolve form, or what is wrong with it."""
    problems = []
    code = form.get("resolution_code", "")
    if code not in _RESOLUTIONS:
        problems.append("Choose a resolution code.")
    reason = operator_reason(form)
    if reason is None:
        problems.append(
            f"Say why (1-{store.MAX_REASON_CHARS} characters): it goes to the history and the audit log."
        )
    action_id = form.get("action_id", "")
    if not _ACTION_ID.match(action_id):
        problems.append("The form is incomplete: reload the page.")
    return problems if problems else (code, reason or "", action_id)


@router.post(_BASE + "/mismatches/{mismatch_id}/resolve")
async def resolve_one(mismatch_id: str, request: Request) -> Response:
    acting = await acting_session(request)
    if isinstance(acting, Response):
        return acting
    session, form = acting
    if not ID_RULE.match(mismatch_id):
        return message_page(404, "No such mismatch", "There is no mismatch with this id.", session)
    parsed = _resolve_form(form)
    if isinstance(parsed, list):
        return await _mismatch_page(request, session, mismatch_id, 400, errors=parsed)
    code, reason, action_id = parsed
    failed = await _act(
        request, session, "recon.resolve", [mismatch_id], reason, f"resolution={code}",
        _recon(request).ResolveMismatches,
        pb.ResolveMismatchesRequest(mismatch_ids=[mismatch_id], resolution_code=code, reason=reason,
                                    actor=_actor(session)),
        f"console-resolve-{action_id}",
    )  # fmt: skip
    if failed:
        return await _failure_page(request, session, mismatch_id, failed)
    return _done(mismatch_id, "resolve")


async def _bulk_form(request: Request) -> dict[str, list[str]] | None:
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media != "application/x-www-form-urlencoded":
        return None
    try:
        text = (await request.body()).decode("utf-8")
        return parse_qs(text, keep_blank_values=True, max_num_fields=_MAX_BULK + 10)
    except (UnicodeDecodeError, ValueError):
        return None


@router.post(_BASE + "/mismatches/resolve")
async def resolve_many(request: Request) -> Response:
    """The queue's bulk resolve: the ticked mismatches, all or none (ResolveMismatches' rule)."""
    session = await signed_in_session(request)
    if session is None:
        return message_page(403, "Signed out", "Sign in again; nothing was changed.")
    # The checkboxes share one name, and a page has up to 50 of them: the shared form reader keeps the
    # first value of a name and at most 40 fields, so the form is read here, with the same checks.
    fields = await _bulk_form(request)
    if fields is None:
        return message_page(
            415, "Not a form", "Send the form as the page does; nothing was changed.", session
        )
    form = {name: values[0] for name, values in fields.items()}
    if not secrets.compare_digest(form.get("csrf", "").encode(), session.csrf_token.encode()):
        return message_page(
            403, "Form expired", "Reload the page and try again; nothing was changed.", session
        )
    ids = list(dict.fromkeys(fields.get("mismatch_id", [])))
    back = form.get("back", "")
    # Back to the list as it was filtered; only a path of the queue itself, never elsewhere.
    safe = back.startswith(f"{_BASE}/mismatches?") and not any(c in back for c in "\\\r\n")
    back_url = re.sub(r"&?done=[0-9]*", "", back) if safe else f"{_BASE}/mismatches?state=open"
    parsed = _resolve_form(form)
    problems = parsed if isinstance(parsed, list) else []
    if not ids:
        problems.append("Tick at least one mismatch.")
    if len(ids) > _MAX_BULK or not all(ID_RULE.match(i) for i in ids):
        problems.append(f"Tick at most {_MAX_BULK} mismatches from the list.")
    if problems or isinstance(parsed, list):
        return message_page(400, "Nothing resolved", " ".join(problems) + " Nothing was changed.", session)
    code, reason, action_id = parsed
    failed = await _act(
        request, session, "recon.resolve", ids, reason, f"resolution={code}; bulk of {len(ids)}",
        _recon(request).ResolveMismatches,
        pb.ResolveMismatchesRequest(mismatch_ids=ids, resolution_code=code, reason=reason, actor=_actor(session)),
        f"console-resolve-{action_id}",
    )  # fmt: skip
    if failed and failed.refused:
        return message_page(
            409, "Nothing resolved", f"{failed.text} (all or none: nothing was changed)", session
        )
    if failed:
        return message_page(503, "Resolve outcome unknown", failed.text, session)
    return RedirectResponse(f"{back_url}&done={len(ids)}", status_code=303, headers=PAGE_HEADERS)
