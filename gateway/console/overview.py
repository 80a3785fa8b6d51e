"""The console's overview: payments per minute and success rate over the last hours, declines by code,
settlement lag, open mismatches and the dead-letter count, on one page, charts drawn as inline SVG on the
server (no script).

Four cheap reads, made concurrently: ``GetPaymentStats`` (one scan of the payment orders' ``created_at``
index over the window), ``ListReconciliationRuns`` (the newest page), ``ListMismatches`` (open ones, one
page: past it the count is shown as "at least") and ``ListStreams`` (Redis lengths). A source that does
not answer leaves its tile saying so; the rest of the page is still shown.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
from fastapi import APIRouter, Request
from fastapi.responses import Response

from gateway.console.web import (
    render_page,
    rpc_error_text,
    signed_in_session,
    to_sign_in,
    upstream_deadline,
)
from gateway.upstream import call
from svckit.gen.events.v1 import events_admin_service_pb2 as epb
from svckit.gen.events.v1 import events_admin_service_pb2_grpc as epb_grpc
from svckit.gen.payments.v1 import payment_service_pb2 as pb
from svckit.gen.recon.v1 import recon_service_pb2 as rpb

router = APIRouter(include_in_schema=False)

WINDOW_MINUTES = 180
BUCKET_MINUTES = 5
_OPEN_PAGE = 100  # past it the tile says "100+": the queue page has the rest
# The chart's drawing box (SVG user units; the SVG scales to its container's width).
_W, _H, _PAD = 720, 160, 28


@dataclass(frozen=True)
class _Bar:
    x: float
    y: float
    w: float
    h: float
    label: str


@dataclass(frozen=True)
class Chart:
    bars: list[_Bar]
    rate_points: list[tuple[float, float]]
    """The success rate's points (x, y), one per bucket with decided orders: a line and dots."""
    peak: float
    """Payments per minute at the top of the axis."""
    rows: list[tuple[str, str, int, str]]
    """(bucket start, per minute, orders, success rate) for the table under the chart."""
    total: int
    rate: str
    width: int = _W
    height: int = _H
    pad: int = _PAD


def chart(reply: pb.GetPaymentStatsResponse, now: datetime) -> Chart:
    """Bars of payments per minute per bucket over the whole window (empty buckets drawn as zero) and
    the success rate (captured / (captured + failed)) as a line, in the SVG's coordinates."""
    step = BUCKET_MINUTES * 60
    end = int(now.timestamp()) // step * step
    starts = [end - step * i for i in range(WINDOW_MINUTES // BUCKET_MINUTES - 1, -1, -1)]
    got = {int(b.start_time.seconds): b for b in reply.buckets}
    per_minute = [(got[s].created if s in got else 0) / BUCKET_MINUTES for s in starts]
    peak = max([*per_minute, 1.0])
    inner_w, inner_h = _W - 2 * _PAD, _H - 2 * _PAD
    slot = inner_w / len(starts)
    bars, points, rows = [], [], []
    ok_total = failed_total = 0
    for i, (start, rate) in enumerate(zip(starts, per_minute, strict=True)):
        b = got.get(start)
        h = inner_h * rate / peak
        when = datetime.fromtimestamp(start, UTC).strftime("%H:%M")
        bars.append(_Bar(round(_PAD + i * slot + 1, 1), round(_PAD + inner_h - h, 1), round(max(slot - 2, 1), 1),
                         round(h, 1), f"{when} UTC: {rate:g} per minute"))  # fmt: skip
        if b is not None and b.succeeded + b.failed:
            share = b.succeeded / (b.succeeded + b.failed)
            points.append((round(_PAD + (i + 0.5) * slot, 1), round(_PAD + inner_h * (1 - share), 1)))
            ok_total += b.succeeded
            failed_total += b.failed
        if b is not None:
            decided = b.succeeded + b.failed
            rows.append(
                (when, f"{rate:g}", b.created, f"{100 * b.succeeded / decided:.1f} %" if decided else "—")
            )
    decided = ok_total + failed_total
    return Chart(
        bars=bars,
        rate_points=points,
        peak=peak,
        rows=rows,
        total=sum(b.created for b in reply.buckets),
        rate=f"{100 * ok_total / decided:.1f} %" if decided else "—",
    )


def _lag_text(seconds: float) -> str:
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


async def _stats(request: Request) -> Any:
    reply, _ = await call(
        request.app.state.upstreams.payment.GetPaymentStats,
        pb.GetPaymentStatsRequest(window_minutes=WINDOW_MINUTES, bucket_minutes=BUCKET_MINUTES),
        upstream_deadline(request),
    )
    return reply


async def _settlement(request: Request) -> dict[str, str]:
    """How far behind the books the PSP's settlement files are: now minus the end of the newest settled
    interval among the latest runs."""
    reply, _ = await call(
        request.app.state.upstreams.recon.ListReconciliationRuns,
        rpb.ListReconciliationRunsRequest(page_size=50),
        upstream_deadline(request),
    )
    settled = [
        r
        for r in reply.runs
        if r.kind == rpb.RECONCILIATION_RUN_KIND_SETTLEMENT_FILE
        and r.state == rpb.RECONCILIATION_RUN_STATE_SUCCEEDED
        and r.HasField("interval_end_time")
    ]
    if not settled:
        return {"lag": "no settled file yet", "detail": ""}
    newest = max(settled, key=lambda r: r.interval_end_time.ToDatetime(UTC))
    end = newest.interval_end_time.ToDatetime(UTC)
    lag = max((datetime.now(UTC) - end).total_seconds(), 0.0)
    return {"lag": _lag_text(lag), "detail": f"activity settled up to {end:%Y-%m-%d %H:%M} UTC"}


async def _open_mismatches(request: Request) -> str:
    reply, _ = await call(
        request.app.state.upstreams.recon.ListMismatches,
        rpb.ListMismatchesRequest(state="open", page_size=_OPEN_PAGE),
        upstream_deadline(request),
    )
    n = len(reply.mismatches)
    return f"{n}+" if reply.next_page_token else str(n)


async def _events(request: Request) -> dict[str, Any]:
    stub = epb_grpc.EventsAdminServiceStub(request.app.state.upstreams.channels["payment"])
    reply, _ = await call(stub.ListStreams, epb.ListStreamsRequest(), upstream_deadline(request))
    lags = [(f"{s.name} / {g.name}", g.lag) for s in reply.streams for g in s.groups if g.lag >= 0]
    worst = max(lags, key=lambda x: x[1]) if lags else ("", 0)
    return {"dead_letters": reply.dead_letter_count, "retries": reply.scheduled_retry_count,
            "worst_lag": worst[1], "worst_group": worst[0]}  # fmt: skip


def _outcome(result: Any) -> tuple[Any, str]:
    if isinstance(result, grpc.aio.AioRpcError):
        return None, rpc_error_text(result)[1]
    if isinstance(result, BaseException):
        raise result
    return result, ""


@router.get("/console/overview")
async def overview(request: Request) -> Response:
    session = await signed_in_session(request)
    if session is None:
        return to_sign_in()
    results = await asyncio.gather(
        _stats(request), _settlement(request), _open_mismatches(request), _events(request),
        return_exceptions=True,
    )  # fmt: skip
    (stats, stats_error), (settlement, settlement_error), (open_count, open_error), (events, events_error) = (
        _outcome(r) for r in results
    )
    now = datetime.now(UTC)
    return render_page(
        "overview_main.html",
        200,
        session,
        title="Overview",
        window_hours=WINDOW_MINUTES // 60,
        bucket=BUCKET_MINUTES,
        chart=chart(stats, now) if stats is not None else None,
        declines=[(d.code or "(none given)", d.count) for d in stats.declines] if stats is not None else [],
        stats_error=stats_error,
        settlement=settlement,
        settlement_error=settlement_error,
        open_count=open_count,
        open_error=open_error,
        events=events,
        events_error=events_error,
        since=(now - timedelta(minutes=WINDOW_MINUTES)).strftime("%H:%M"),
    )
