"""Request and response bodies of the reconciliation admin routes, and their mapping to ``recon.v1``."""

from __future__ import annotations

import datetime as dt
import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from gateway.schemas import ID_PATTERN
from svckit.gen.recon.v1 import recon_service_pb2 as pb
from svckit.money import MoneyError, format_amount

ResolutionCode = Literal["adjusted_in_ledger", "written_off", "psp_contacted", "false_positive"]
Reason = Annotated[str, StringConstraints(min_length=1, max_length=2000)]
MismatchId = Annotated[str, StringConstraints(pattern=ID_PATTERN)]

MAX_BULK = 1000
"""recon's ResolveMismatches takes at most this many at once (all or none)."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class StartRunBody(_Strict):
    # Strict mode takes dates only as "YYYY-MM-DD" strings from JSON, which is what we document.
    date: dt.date = Field(
        description="The UTC day whose settlement report to fetch from the PSP; a finished day."
    )


class ResolveBody(_Strict):
    resolution_code: ResolutionCode
    reason: Reason = Field(description="Why, kept in the mismatch's history.")


class BulkResolveBody(ResolveBody):
    mismatch_ids: list[MismatchId] = Field(min_length=1, max_length=MAX_BULK)


class RowErrorOut(BaseModel):
    line: int
    reason: str
    message: str


class RunReportOut(BaseModel):
    run_id: str
    state: str = Field(
        description="SUCCEEDED, FAILED (nothing booked), DUPLICATE_FILE (nothing done) or RUNNING."
    )
    file_sha256: str | None
    rows_read: int
    matched: int
    booked: int
    already_counted: int
    pending: int
    auto_fixed: int
    row_error_count: int
    row_errors: list[RowErrorOut]
    error: str | None
    mismatches_by_code: dict[str, int]
    open_by_classification: dict[str, int]
    psp_totals: dict[str, dict[str, int]] = Field(
        description="`<CUR>:<reporting_category>` → gross, fee, net (minor units) and rows, as the PSP reports them."
    )
    booked_totals: dict[str, dict[str, int]] = Field(
        description="`<CUR>` → gross and fee we booked (minor units)."
    )


class RunOut(BaseModel):
    run_id: str
    kind: str = Field(description="settlement_file or wallet_ledger.")
    state: str
    create_time: str | None
    finish_time: str | None
    interval_start_time: str | None
    interval_end_time: str | None
    ok: bool
    mismatch_count: int
    failure_reason: str | None


class RunListOut(BaseModel):
    runs: list[RunOut]
    next_page_token: str | None


class DifferenceOut(BaseModel):
    field: str
    ours: str
    theirs: str


class MismatchOut(BaseModel):
    mismatch_id: str
    run_id: str
    code: str
    classification: str
    state: str
    balance_transaction_id: str | None
    our_reference: str | None
    amount: str = Field(
        description="Decimal string in the currency's major unit (theirs when the file has the row)."
    )
    currency: str
    differences: list[DifferenceOut]
    line: int
    assignee: str | None
    resolution_code: str | None
    create_time: str | None


class MismatchListOut(BaseModel):
    mismatches: list[MismatchOut]
    next_page_token: str | None


class ResolvedOut(BaseModel):
    resolved: int


def _opt(text: str) -> str | None:
    return text or None


def _time(ts: Any, present: bool = True) -> str | None:
    if not present:
        return None
    return ts.ToDatetime(tzinfo=dt.UTC).isoformat().replace("+00:00", "Z")


def report_out(r: pb.SettlementRunReport) -> RunReportOut:
    extra = json.loads(r.report_json) if r.report_json else {}
    return RunReportOut(
        run_id=r.run_id,
        state=r.state,
        file_sha256=_opt(r.file_sha256),
        rows_read=r.rows_read,
        matched=r.matched,
        booked=r.booked,
        already_counted=r.already_counted,
        pending=r.pending,
        auto_fixed=r.auto_fixed,
        row_error_count=r.row_error_count,
        row_errors=[RowErrorOut(line=e.line, reason=e.reason, message=e.message) for e in r.row_errors],
        error=_opt(r.error),
        mismatches_by_code=dict(r.mismatches_by_code),
        open_by_classification=dict(r.open_by_classification),
        psp_totals=extra.get("psp_totals", {}),
        booked_totals=extra.get("booked_totals", {}),
    )


def _enum(enum_type: Any, value: int, prefix: str) -> str:
    return enum_type.Name(value).removeprefix(prefix).lower()


def run_out(r: pb.ReconciliationRun) -> RunOut:
    return RunOut(
        run_id=r.run_id,
        kind=_enum(pb.ReconciliationRunKind, r.kind, "RECONCILIATION_RUN_KIND_"),
        state=_enum(pb.ReconciliationRunState, r.state, "RECONCILIATION_RUN_STATE_"),
        create_time=_time(r.create_time, r.HasField("create_time")),
        finish_time=_time(r.finish_time, r.HasField("finish_time")),
        interval_start_time=_time(r.interval_start_time, r.HasField("interval_start_time")),
        interval_end_time=_time(r.interval_end_time, r.HasField("interval_end_time")),
        ok=r.ok,
        mismatch_count=r.mismatch_count,
        failure_reason=_opt(r.failure_reason),
    )


def _amount(minor: int, currency: str) -> str:
    try:
        return format_amount(minor, currency)
    except MoneyError:  # not an ISO 4217 code we know: the minor units as they are, never a guess
        return str(minor)


def mismatch_out(m: pb.Mismatch) -> MismatchOut:
    return MismatchOut(
        mismatch_id=m.mismatch_id,
        run_id=m.run_id,
        code=m.code,
        classification=m.classification,
        state=m.state,
        balance_transaction_id=_opt(m.balance_transaction_id),
        our_reference=_opt(m.our_reference),
        amount=_amount(m.amount_minor, m.currency),
        currency=m.currency,
        differences=[DifferenceOut(field=d.field, ours=d.ours, theirs=d.theirs) for d in m.differences],
        line=m.line,
        assignee=_opt(m.assignee),
        resolution_code=_opt(m.resolution_code),
        create_time=_time(m.create_time, m.HasField("create_time")),
    )
