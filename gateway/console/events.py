"""The console's events screen: stream lag per consumer group, dead letters with their error and attempts,
replay or discard one with a reason.

Everything goes through ``events.v1.EventsAdminService`` on the payment service (the same EventsAdmin
code as ``python -m svckit.events dlq ...``), over the gateway's payment channel: the console reads no
Redis key itself. Replay and discard are recorded in the audit log before the call, with the operator's
reason; a discard also hands the reason and the operator to the service, which keeps them in its
discard trail.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import grpc
from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from gateway.console import store
from gateway.console.store import Session
from gateway.console.web import (
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
from svckit.errors import ErrorKind
from svckit.gen.events.v1 import events_admin_service_pb2 as pb
from svckit.gen.events.v1 import events_admin_service_pb2_grpc as pb_grpc

router = APIRouter(include_in_schema=False)

_BASE = "/console/events"
_ENTRY_ID = re.compile(r"^\d{1,20}-\d{1,20}$")  # a stream entry id, as EventsAdmin checks it
_PAGE_SIZE = 25


def _admin(request: Request) -> pb_grpc.EventsAdminServiceStub:
    # The payment service mounts the events admin service; a stub is a thin wrapper over the channel.
    return pb_grpc.EventsAdminServiceStub(request.app.state.upstreams.channels["payment"])


@dataclass(frozen=True)
class _Letter:
    id: str
    stream: str
    group: str
    type: str
    aggregate_id: str
    event_id: str
    reason: str
    last_error: str
    attempts: int
    dead: str


def _letter(d: pb.DeadLetter) -> _Letter:
    return _Letter(
        id=d.id,
        stream=d.stream,
        group=d.group,
        type=d.event.type,
        aggregate_id=d.event.aggregate_id,
        event_id=d.event.event_id,
        reason=d.reason,
        last_error=d.last_error,
        attempts=len(d.attempts),
        dead=when_text(d.dead_letter_time),
    )


@router.get(_BASE)
async def events(request: Request) -> Response:
    session = await signed_in_session(request)
    if session is None:
        return to_sign_in()
    page_token = request.query_params.get("page_token", "")[:50]
    if page_token and not _ENTRY_ID.match(page_token):
        page_token = ""
    admin = _admin(request)
    error = next_url = ""
    streams: list[pb.Stream] = []
    letters: list[_Letter] = []
    counts = (0, 0)
    try:
        overview, _ = await call(admin.ListStreams, pb.ListStreamsRequest(), upstream_deadline(request))
        streams = list(overview.streams)
        counts = (overview.scheduled_retry_count, overview.dead_letter_count)
        page, _ = await call(
            admin.ListDeadLetters,
            pb.ListDeadLettersRequest(page_size=_PAGE_SIZE, page_token=page_token),
            upstream_deadline(request),
        )
        letters = [_letter(d) for d in page.dead_letters]
        if page.next_page_token:
            next_url = f"{_BASE}?" + urlencode({"page_token": page.next_page_token})
    except grpc.aio.AioRpcError as exc:
        error = rpc_error_text(exc)[1]
    return render_page(
        "events_overview.html",
        503 if error else 200,
        session,
        title="Events",
        streams=streams,
        retries=counts[0],
        dead_letters=counts[1],
        letters=letters,
        error=error,
        next_url=next_url,
        done=request.query_params.get("done", "")[:10],
    )


def _pretty(payload_json: str) -> str:
    try:
        return json.dumps(json.loads(payload_json), indent=2, sort_keys=True)
    except ValueError:
        return payload_json


async def _letter_page(
    request: Request, session: Session, entry_id: str, status: int = 200, **extra: Any
) -> Response:
    if not _ENTRY_ID.match(entry_id):
        return message_page(404, "No such dead letter", "There is no dead letter with this id.", session)
    try:
        reply, _ = await call(
            _admin(request).GetDeadLetter, pb.GetDeadLetterRequest(id=entry_id), upstream_deadline(request)
        )
    except grpc.aio.AioRpcError as exc:
        err, text = rpc_error_text(exc)
        if err.kind is ErrorKind.NOT_FOUND:
            return message_page(
                404, "No such dead letter", "It was replayed or discarded, or never existed.", session
            )
        return message_page(503, "Cannot show this dead letter", text, session)
    d = reply.dead_letter
    async with gateway_engine(request).connect() as conn:
        audit = await store.entries(conn, target=entry_id, limit=20)
    return render_page(
        "events_dead_letter.html",
        status,
        session,
        title=f"Dead letter {entry_id}",
        letter=_letter(d),
        occurred=when_text(d.event.occur_time),
        payload=_pretty(d.event.payload_json),
        attempts=[(a.attempt, when_text(a.fail_time), a.error) for a in d.attempts],
        audit=audit,
        **extra,
    )


@router.get(_BASE + "/dead-letters/{entry_id}")
async def dead_letter(entry_id: str, request: Request) -> Response:
    session = await signed_in_session(request)
    if session is None:
        return to_sign_in()
    return await _letter_page(request, session, entry_id)


async def _operate(request: Request, entry_id: str, what: str) -> Response:
    """Replay or discard one dead letter: reason required, audited before and after the call."""
    acting = await acting_session(request)
    if isinstance(acting, Response):
        return acting
    session, form = acting
    if not _ENTRY_ID.match(entry_id):
        return message_page(404, "No such dead letter", "There is no dead letter with this id.", session)
    reason = operator_reason(form)
    if reason is None:
        problem = f"Say why (1-{store.MAX_REASON_CHARS} characters): it goes to the audit log."
        return await _letter_page(request, session, entry_id, 400, errors=[problem])
    admin = _admin(request)
    async with gateway_engine(request).begin() as conn:
        entry = await store.record(conn, session, f"events.{what}", entry_id, reason)
    try:
        if what == "replay":
            reply, _ = await call(
                admin.ReplayDeadLetter, pb.ReplayDeadLetterRequest(id=entry_id), upstream_deadline(request)
            )
            detail = f"re-published as {reply.stream_entry_id}"
        else:
            discarded, _ = await call(
                admin.DiscardDeadLetter,
                pb.DiscardDeadLetterRequest(
                    id=entry_id, reason=reason, operator=f"{session.key_name} ({session.key_id})"
                ),
                upstream_deadline(request),
            )
            detail = f"event {discarded.event_id} discarded"
    except grpc.aio.AioRpcError as exc:
        err, text = rpc_error_text(exc)
        outcome, status = failed_outcome(err)
        async with gateway_engine(request).begin() as conn:
            await store.finish(conn, entry, outcome, text)
        if outcome == "unknown":
            return message_page(status, f"{what.capitalize()} outcome unknown",
                            f"{text}. Check the dead letters before trying again.", session)  # fmt: skip
        if err.kind is ErrorKind.NOT_FOUND:
            return message_page(409, "Already handled", f"{text}. Nothing was changed.", session)
        return await _letter_page(request, session, entry_id, status, errors=[text])
    async with gateway_engine(request).begin() as conn:
        await store.finish(conn, entry, "ok", detail)
    return RedirectResponse(f"{_BASE}?done={what}", status_code=303, headers=PAGE_HEADERS)


@router.post(_BASE + "/dead-letters/{entry_id}/replay")
async def replay(entry_id: str, request: Request) -> Response:
    return await _operate(request, entry_id, "replay")


@router.post(_BASE + "/dead-letters/{entry_id}/discard")
async def discard(entry_id: str, request: Request) -> Response:
    return await _operate(request, entry_id, "discard")
