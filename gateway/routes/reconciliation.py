"""Settlement reconciliation for operators (scope ``admin``): runs and the exceptions queue, over recon.v1.

``POST /v1/admin/reconciliation/runs`` takes either JSON (``{"date": ...}``: recon fetches that day's report
from the PSP) or ``multipart/form-data`` with the CSV as ``file``; its body limit is
``GATEWAY_SETTLEMENT_UPLOAD_MAX_BYTES`` (the middleware answers 413 past it, while reading).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from fastapi import Header, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.datastructures import UploadFile

from gateway import recon_schemas as rs
from gateway.guard import admin_router, check_content_type
from gateway.problems import ApiProblem
from gateway.schemas import ID_PATTERN
from gateway.upstream import call, mark_replayed
from svckit.gen.recon.v1 import recon_service_pb2 as pb

RUNS_PATH = "/v1/admin/reconciliation/runs"

router = admin_router("/v1/admin/reconciliation", "reconciliation")

IdempotencyKey = Annotated[str, Header(alias="Idempotency-Key", min_length=1, max_length=255)]
IdPath = Annotated[str, Path(pattern=ID_PATTERN)]

_START_BODY = {
    "required": True,
    "content": {
        "application/json": {"schema": rs.StartRunBody.model_json_schema()},
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["file"],
                "properties": {
                    "file": {
                        "type": "string",
                        "format": "binary",
                        "description": "The PSP's balance_change_from_activity.itemized report (CSV).",
                    }
                },
            }
        },
    },
}


def _deadline(request: Request) -> float:
    return request.app.state.settings.upstream_timeout_seconds


def _actor(request: Request) -> str:
    key = request.state.api_key
    return f"{key.name} ({key.id})"


async def _start_request(request: Request) -> pb.StartSettlementRunRequest:
    content_type = request.headers.get("content-type", "")
    if content_type.split(";", 1)[0].strip().lower() == "multipart/form-data":
        # One file and nothing much else: a form of a thousand parts is not an upload of ours.
        async with request.form(max_files=1, max_fields=10) as form:
            upload = form.get("file")
            if not isinstance(upload, UploadFile):
                raise ApiProblem(
                    400, "MISSING_FIELD", "send the settlement CSV as the form's 'file' part", field="file"
                )
            content = await upload.read()
        if not content:
            raise ApiProblem(400, "SETTLEMENT_FILE_REFUSED", "the uploaded file is empty", field="file")
        return pb.StartSettlementRunRequest(file_content=content)
    check_content_type(content_type)  # else JSON, UTF-8 (415 otherwise)
    try:
        await request.json()  # the strict parse (UTF-8, no duplicate keys, no control characters)
        # From the JSON text: strict mode takes a date as a "YYYY-MM-DD" string only there.
        body = rs.StartRunBody.model_validate_json(await request.body())
    except ValidationError as exc:
        raise RequestValidationError(exc.errors()) from None
    if body.date >= dt.datetime.now(dt.UTC).date():
        raise ApiProblem(
            400,
            "SETTLEMENT_DAY_NOT_AVAILABLE",
            f"{body.date} has not ended (UTC); the PSP reports finished days only",
            field="date",
        )
    return pb.StartSettlementRunRequest(date=body.date.isoformat())


@router.post(
    "/runs",
    status_code=201,
    response_model=rs.RunReportOut,
    summary="Reconcile a day's settlement report (fetched from the PSP) or an uploaded one",
    description='JSON `{"date": "YYYY-MM-DD"}` fetches that finished UTC day\'s report from the PSP; '
    "`multipart/form-data` with the CSV as `file` reconciles an uploaded one. Answers when the run is done, "
    "with its report. A refused file or malformed rows end the run `FAILED` with the errors (line and "
    "reason) and book nothing; a file ingested before ends it `DUPLICATE_FILE`, changing nothing, so no "
    "`Idempotency-Key` is needed.",
    openapi_extra={"requestBody": _START_BODY},
    responses={
        400: {
            "description": "bad body (`INVALID_REQUEST`, `MISSING_FIELD`), a day not over or before the "
            "PSP's data (`SETTLEMENT_DAY_NOT_AVAILABLE`), an empty file (`SETTLEMENT_FILE_REFUSED`)"
        },
        413: {
            "description": "the body is over the upload limit (`PAYLOAD_TOO_LARGE`): use the recon CLI's --file"
        },
        415: {"description": "neither JSON nor multipart/form-data (`UNSUPPORTED_MEDIA_TYPE`)"},
        503: {
            "description": "the PSP's report could not be fetched (`SETTLEMENT_REPORT_UNAVAILABLE`); retry"
        },
    },
)
async def start_run(request: Request) -> rs.RunReportOut:
    reply, _ = await call(
        request.app.state.upstreams.recon.StartSettlementRun,
        await _start_request(request),
        request.app.state.settings.settlement_run_timeout_seconds,
    )
    return rs.report_out(reply.report)


@router.get(
    "/runs",
    response_model=rs.RunListOut,
    summary="Reconciliation runs (settlement files and wallet checks), newest first",
)
async def list_runs(
    request: Request,
    page_size: Annotated[int, Query(ge=0, le=100, description="1-100; 0 means 20.")] = 0,
    page_token: Annotated[str, Query(max_length=2048)] = "",
) -> rs.RunListOut:
    reply, _ = await call(
        request.app.state.upstreams.recon.ListReconciliationRuns,
        pb.ListReconciliationRunsRequest(page_size=page_size, page_token=page_token),
        _deadline(request),
    )
    return rs.RunListOut(
        runs=[rs.run_out(r) for r in reply.runs], next_page_token=reply.next_page_token or None
    )


@router.get(
    "/runs/{run_id}",
    response_model=rs.RunReportOut,
    summary="A settlement run's report",
    responses={404: {"description": "no settlement run with this id (`RUN_NOT_FOUND`)"}},
)
async def get_run(run_id: IdPath, request: Request) -> rs.RunReportOut:
    reply, _ = await call(
        request.app.state.upstreams.recon.GetSettlementRun,
        pb.GetSettlementRunRequest(run_id=run_id),
        _deadline(request),
    )
    return rs.report_out(reply.report)


@router.get(
    "/mismatches",
    response_model=rs.MismatchListOut,
    summary="The exceptions queue: mismatches, oldest first, filtered (filters combine)",
    responses={400: {"description": "a page token of other filters (`INVALID_PAGE_TOKEN`)"}},
)
async def list_mismatches(
    request: Request,
    run_id: Annotated[str, Query(pattern=ID_PATTERN)] | None = None,
    code: Annotated[str, Query(pattern=r"^[A-Z][A-Z_]{0,63}$", description="e.g. AMOUNT_DIFFERS")]
    | None = None,
    classification: Literal["auto_fixable", "manual", "unclassified"] | None = None,
    state: Literal["open", "auto_fixed", "resolved"] | None = None,
    page_size: Annotated[int, Query(ge=0, le=500, description="1-500; 0 means 100.")] = 0,
    page_token: Annotated[str, Query(max_length=2048)] = "",
) -> rs.MismatchListOut:
    reply, _ = await call(
        request.app.state.upstreams.recon.ListMismatches,
        pb.ListMismatchesRequest(
            run_id=run_id or "",
            code=code or "",
            classification=classification or "",
            state=state or "",
            page_size=page_size,
            page_token=page_token,
        ),
        _deadline(request),
    )
    return rs.MismatchListOut(
        mismatches=[rs.mismatch_out(m) for m in reply.mismatches],
        next_page_token=reply.next_page_token or None,
    )


_RESOLVE_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "bad body (`INVALID_REQUEST`, `INVALID_RESOLUTION_CODE`, `TOO_MANY_ITEMS`)"},
    404: {"description": "unknown mismatch (`MISMATCH_NOT_FOUND`)"},
    409: {"description": "resolved or auto-fixed already (`MISMATCH_NOT_OPEN`); nothing was resolved"},
}


async def _resolve(
    request: Request, response: Response, ids: list[str], body: rs.ResolveBody
) -> rs.ResolvedOut:
    reply, replayed = await call(
        request.app.state.upstreams.recon.ResolveMismatches,
        pb.ResolveMismatchesRequest(
            mismatch_ids=ids, resolution_code=body.resolution_code, reason=body.reason, actor=_actor(request)
        ),
        _deadline(request),
    )
    mark_replayed(response, replayed)
    return rs.ResolvedOut(resolved=reply.resolved)


@router.post(
    "/mismatches/resolve",
    response_model=rs.ResolvedOut,
    summary="Resolve open mismatches in bulk (up to 1000, all or none)",
    description="The resolver kept in each mismatch's history is the API key's name and id. Resolving never "
    "edits a ledger entry: a correction is a new ledger transaction.",
    responses=_RESOLVE_ERRORS,
)
async def resolve_mismatches(
    body: rs.BulkResolveBody, request: Request, response: Response, idempotency_key: IdempotencyKey
) -> rs.ResolvedOut:
    return await _resolve(request, response, body.mismatch_ids, body)


@router.post(
    "/mismatches/{mismatch_id}/resolve",
    response_model=rs.ResolvedOut,
    summary="Resolve one open mismatch with a resolution code and a reason",
    description="The resolver kept in the mismatch's history is the API key's name and id.",
    responses=_RESOLVE_ERRORS,
)
async def resolve_mismatch(
    mismatch_id: IdPath,
    body: rs.ResolveBody,
    request: Request,
    response: Response,
    idempotency_key: IdempotencyKey,
) -> rs.ResolvedOut:
    return await _resolve(request, response, [mismatch_id], body)
