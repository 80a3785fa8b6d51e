"""gRPC transport of the settlement RPCs of ``recon.v1.ReconService`` (mixed into ReconServicer)."""

from __future__ import annotations

import datetime as dt
import io
import json
from dataclasses import dataclass
from typing import Any

import grpc
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from recon_svc.config import ReconSettings
from recon_svc.record_checks import RecordChecker
from recon_svc.settlement import exceptions as queue
from recon_svc.settlement import tables as t
from recon_svc.settlement.classify import Rules
from recon_svc.settlement.nightly import reconcile_day
from recon_svc.settlement.records import GrpcPaymentRecords, SettlementBooker
from recon_svc.settlement.run import RunReport, WorkerSetup, reconcile_file
from svckit import pagination
from svckit.errors import InvalidArgument, NotFound
from svckit.gen.recon.v1 import recon_service_pb2 as pb
from svckit.idempotency import IdempotencyStore, idempotent_rpc
from svckit.protobuf import timestamp


@dataclass
class SettlementDeps:
    engine: AsyncEngine
    idempotency: IdempotencyStore
    records: GrpcPaymentRecords
    booker: SettlementBooker
    rules: Rules
    settings: ReconSettings
    record_checks: RecordChecker | None = None
    """The per-record internal checks a day's run ends with (None: not run)."""


def report_to_pb(r: RunReport | dict[str, Any]) -> pb.SettlementRunReport:
    d = r.as_dict() if isinstance(r, RunReport) else r
    return pb.SettlementRunReport(
        run_id=d["run_id"],
        state=d["state"],
        file_sha256=d.get("file_sha256", ""),
        rows_read=d.get("rows_read", 0),
        matched=d.get("matched", 0),
        booked=d.get("booked", 0),
        already_counted=d.get("already_counted", 0),
        pending=d.get("pending", 0),
        auto_fixed=d.get("auto_fixed", 0),
        row_error_count=d.get("row_error_count", 0),
        row_errors=[pb.SettlementRowError(**e) for e in d.get("row_errors", [])],
        error=d.get("error", ""),
        mismatches_by_code=d.get("mismatches_by_code", {}),
        open_by_classification=d.get("open_by_classification", {}),
        report_json=json.dumps(d, sort_keys=True),
    )


def mismatch_to_pb(m: queue.MismatchView) -> pb.Mismatch:
    return pb.Mismatch(
        mismatch_id=m.mismatch_id,
        run_id=m.run_id,
        code=m.code,
        classification=m.classification,
        state=m.state,
        balance_transaction_id=m.balance_transaction_id,
        our_reference=m.our_reference,
        amount_minor=m.amount_minor,
        currency=m.currency,
        differences=[pb.FieldDifference(**d) for d in m.differences],
        line=m.line,
        assignee=m.assignee or "",
        resolution_code=m.resolution_code or "",
        create_time=timestamp(m.created_at),
    )


class SettlementRpcs:
    """The settlement RPCs; ``settlement`` is set by the composition root."""

    settlement: SettlementDeps

    async def StartSettlementRun(
        self, request: pb.StartSettlementRunRequest, context: grpc.aio.ServicerContext
    ):
        deps = self.settlement
        if bool(request.date) == bool(request.file_content):
            raise InvalidArgument("MISSING_FIELD", "give exactly one of date or file_content", field="date")
        if not request.file_content:
            try:
                day = dt.date.fromisoformat(request.date)
            except ValueError:
                raise InvalidArgument("INVALID_FILTER", "date must be YYYY-MM-DD", field="date") from None
            report = await reconcile_day(deps, day)
            return pb.StartSettlementRunResponse(report=report_to_pb(report))
        report = await reconcile_file(
            deps.engine,
            io.BytesIO(request.file_content),
            deps.records,
            deps.booker,
            deps.rules,
            fixer=deps.records if deps.settings.settlement_auto_fix else None,
            workers=deps.settings.settlement_workers,
            worker_setup=WorkerSetup.from_settings(deps.settings),
            workers_min_rows=deps.settings.settlement_workers_min_rows,
        )
        return pb.StartSettlementRunResponse(report=report_to_pb(report))

    async def GetSettlementRun(self, request: pb.GetSettlementRunRequest, context: grpc.aio.ServicerContext):
        async with self.settlement.engine.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(t.runs.c.run_id, t.runs.c.state, t.runs.c.report).where(
                        t.runs.c.run_id == request.run_id, t.runs.c.kind == "SETTLEMENT_FILE"
                    )
                )
            ).first()
        if row is None:
            raise NotFound("RUN_NOT_FOUND", f"no settlement run {request.run_id!r}")
        return pb.GetSettlementRunResponse(
            report=report_to_pb(row.report or {"run_id": row.run_id, "state": row.state})
        )

    async def ListMismatches(self, request: pb.ListMismatchesRequest, context: grpc.aio.ServicerContext):
        f = queue.Filter(
            run_id=request.run_id,
            code=request.code,
            classification=request.classification,
            state=request.state,
            min_amount_minor=request.min_amount_minor or None,
        )
        listing = ["mismatches", f.run_id, f.code, f.classification, f.state, request.min_amount_minor]
        size = pagination.page_size(request.page_size, default=100, maximum=queue.MAX_PAGE)
        after = pagination.decode_token(request.page_token, listing, int)
        async with self.settlement.engine.connect() as conn:
            page, cursor = await queue.list_mismatches(conn, f, size, after)
        return pb.ListMismatchesResponse(
            mismatches=[mismatch_to_pb(m) for m in page],
            next_page_token=pagination.encode_token(listing, cursor) if cursor is not None else "",
        )

    async def GetMismatch(self, request: pb.GetMismatchRequest, context: grpc.aio.ServicerContext):
        async with self.settlement.engine.connect() as conn:
            view = await queue.get_mismatch(conn, request.mismatch_id)
            actions = await queue.history(conn, request.mismatch_id)
        return pb.GetMismatchResponse(
            mismatch=mismatch_to_pb(view),
            actions=[
                pb.MismatchAction(actor=actor, action=action, detail=detail, create_time=timestamp(at))
                for actor, action, detail, at in actions
            ],
        )

    async def AssignMismatch(self, request: pb.AssignMismatchRequest, context: grpc.aio.ServicerContext):
        async def work(conn: Any) -> pb.AssignMismatchResponse:
            await queue.assign(conn, request.mismatch_id, request.assignee, _actor(request.actor))
            return pb.AssignMismatchResponse()

        return await idempotent_rpc(
            self.settlement.idempotency,
            context,
            "recon.AssignMismatch",
            request,
            pb.AssignMismatchResponse,
            work,
        )

    async def AnnotateMismatch(self, request: pb.AnnotateMismatchRequest, context: grpc.aio.ServicerContext):
        async def work(conn: Any) -> pb.AnnotateMismatchResponse:
            await queue.annotate(conn, request.mismatch_id, request.note, _actor(request.actor))
            return pb.AnnotateMismatchResponse()

        return await idempotent_rpc(
            self.settlement.idempotency,
            context,
            "recon.AnnotateMismatch",
            request,
            pb.AnnotateMismatchResponse,
            work,
        )

    async def ResolveMismatches(
        self, request: pb.ResolveMismatchesRequest, context: grpc.aio.ServicerContext
    ):
        async def work(conn: Any) -> pb.ResolveMismatchesResponse:
            n = await queue.resolve(
                conn,
                list(request.mismatch_ids),
                request.resolution_code,
                request.reason,
                _actor(request.actor),
            )
            return pb.ResolveMismatchesResponse(resolved=n)

        return await idempotent_rpc(
            self.settlement.idempotency,
            context,
            "recon.ResolveMismatches",
            request,
            pb.ResolveMismatchesResponse,
            work,
        )


def _actor(actor: str) -> str:
    if not actor.strip():
        raise InvalidArgument("MISSING_FIELD", "actor (who is acting) is required", field="actor")
    return actor.strip()
