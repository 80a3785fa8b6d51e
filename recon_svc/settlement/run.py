"""One reconciliation run of a settlement file: validate, match, classify, book, record, report.

Two streaming passes over a seekable file keep memory flat and make a bad file book nothing:

1. validate every row and hash the bytes; a refused file or any malformed row fails the run with the errors
   (line and reason), and a file whose SHA-256 was ingested before is recognised and changes nothing;
2. match each row to our records, classify the differences, book matched charges and refunds in the ledger
   (idempotently, keyed by the balance transaction id) and store the mismatches.

A balance transaction already counted by an earlier file (overlapping days) with the same content is skipped;
with other content, or twice in one file, it is a DUPLICATE_ROW. Transfers are matched to our pay-outs (and book
nothing: the pay-out booked itself). Disputes, refund failures, transfer reversals, the PSP's payouts, fees and
adjustments are matched in categories.py; categories of products we do not use become UNMATCHED_ROW for a
person, never silently dropped.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import uuid
from collections import Counter as Tally
from collections import defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import Any, BinaryIO

import sqlalchemy as sa
import structlog
from prometheus_client import Counter
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from recon_svc.settlement import tables as t
from recon_svc.settlement.categories import match_other, redrive_settlement
from recon_svc.settlement.classify import (
    CAPTURED,
    CHARGE_CATEGORIES,
    CLASSIFICATION,
    OTHER_CATEGORIES,
    REFUND_CATEGORIES,
    TRANSFER_CATEGORIES,
    Classification,
    Code,
    Mismatch,
    OurOrder,
    RowOutcome,
    Rules,
    checkout_reference,
    classify_charge,
    classify_refund,
    classify_transfer,
    missing_from_psp,
)
from recon_svc.settlement.missing import missing_payouts
from recon_svc.settlement.parse import RowError, SettlementFileRefused, SettlementParser, SettlementRow
from recon_svc.settlement.records import OrderFixer, PaymentRecords, SettlementBooker
from svckit.errors import DomainError

log = structlog.get_logger(__name__)

RUNS = Counter("recon_settlement_runs_total", "Settlement runs by final state", ["state"])
UNCLASSIFIED = Counter(
    "recon_settlement_unclassified_total", "Unclassified mismatches found by settlement runs"
)

MAX_REPORTED_ROW_ERRORS = 100
"""A broken file may have a million bad rows; the run keeps the first ones (and counts them all)."""


@dataclass
class RunReport:
    run_id: str
    state: str
    """SUCCEEDED, FAILED (refused file or malformed rows: nothing booked) or DUPLICATE_FILE (nothing done)."""
    file_sha256: str = ""
    rows_read: int = 0
    row_errors: list[dict[str, Any]] = field(default_factory=list)
    row_error_count: int = 0
    error: str = ""
    matched: int = 0
    booked: int = 0
    already_counted: int = 0
    pending: int = 0
    auto_fixed: int = 0
    """Our captured orders of the expected window that no file has reached yet, inside the grace period."""
    mismatches_by_code: dict[str, int] = field(default_factory=dict)
    open_by_classification: dict[str, int] = field(default_factory=dict)
    """Mismatches left open (auto-fixed ones are counted in ``auto_fixed``, and by code)."""
    psp_totals: dict[str, dict[str, int]] = field(default_factory=dict)
    """``<CUR>:<reporting_category>`` → gross/fee/net in minor units and the row count, as the PSP reports them."""
    booked_totals: dict[str, dict[str, int]] = field(default_factory=dict)
    """``<CUR>`` → gross/fee we booked."""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _digest(row: SettlementRow) -> str:
    key = (row.balance_transaction_id, row.currency, row.gross_minor, row.fee_minor, row.reporting_category,
           row.source_id)  # fmt: skip
    return hashlib.sha256(repr(key).encode()).hexdigest()


async def _start(engine: AsyncEngine, run_id: str, now: dt.datetime) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            t.runs.insert().values(
                run_id=run_id, state="RUNNING", interval_start=now, interval_end=now, kind="SETTLEMENT_FILE"
            )
        )


async def _finish_and_count(
    engine: AsyncEngine, report: RunReport, first: dt.datetime | None, last: dt.datetime | None
) -> None:
    await _finish(engine, report, first, last)
    RUNS.labels(report.state).inc()
    UNCLASSIFIED.inc(report.open_by_classification.get("unclassified", 0))


async def _finish(
    engine: AsyncEngine, report: RunReport, first: dt.datetime | None, last: dt.datetime | None
) -> None:
    values: dict[str, Any] = {
        "state": "FAILED" if report.state == "FAILED" else "SUCCEEDED",
        "report": json.loads(json.dumps(report.as_dict())),
        "file_sha256": report.file_sha256 or None,
        "error": report.error or None,
        "finished_at": sa.func.now(),
    }
    if first is not None and last is not None:
        values.update(interval_start=first, interval_end=last)
    async with engine.begin() as conn:
        await conn.execute(t.runs.update().where(t.runs.c.run_id == report.run_id).values(**values))


def _validate(source: BinaryIO, report: RunReport) -> tuple[dt.datetime | None, dt.datetime | None]:
    parser = SettlementParser(source)
    first = last = None
    for item in parser:
        if isinstance(item, RowError):
            report.row_error_count += 1
            if len(report.row_errors) < MAX_REPORTED_ROW_ERRORS:
                report.row_errors.append({"line": item.line, "reason": item.reason, "message": item.message})
            continue
        report.rows_read += 1
        first = item.created_utc if first is None else min(first, item.created_utc)
        last = item.created_utc if last is None else max(last, item.created_utc)
    report.file_sha256 = parser.sha256
    return first, last


async def _claim_row(conn: AsyncConnection, row: SettlementRow, run_id: str) -> str:
    """``new``, ``seen`` (same row counted by an earlier file) or ``duplicate``."""
    digest = _digest(row)
    inserted = await conn.execute(
        insert(t.rows)
        .values(
            balance_transaction_id=row.balance_transaction_id,
            row_digest=digest,
            run_id=run_id,
            reporting_category=row.reporting_category,
            currency=row.currency,
            gross_minor=row.gross_minor,
            fee_minor=row.fee_minor,
            our_reference="",
        )
        .on_conflict_do_nothing()
        .returning(t.rows.c.balance_transaction_id)
    )
    if inserted.first() is not None:
        return "new"
    earlier = (
        await conn.execute(
            sa.select(t.rows.c.row_digest, t.rows.c.run_id).where(
                t.rows.c.balance_transaction_id == row.balance_transaction_id
            )
        )
    ).one()
    return "seen" if earlier.row_digest == digest and earlier.run_id != run_id else "duplicate"


async def _store(conn: AsyncConnection, run_id: str, m: Mismatch) -> str:
    mismatch_id = f"mm_{uuid.uuid4().hex}"
    await conn.execute(
        t.mismatches.insert().values(
            mismatch_id=mismatch_id,
            run_id=run_id,
            code=m.code.value,
            classification=m.classification.value,
            state="open",
            balance_transaction_id=m.balance_transaction_id,
            our_reference=m.our_reference,
            currency=m.currency,
            amount_minor=m.amount_minor,
            differences=[{"field": d.field, "ours": d.ours, "theirs": d.theirs} for d in m.differences],
            line=m.line,
        )
    )
    await conn.execute(
        t.actions.insert().values(
            mismatch_id=mismatch_id, actor="recon", action="opened", detail=f"{m.code.value} in run {run_id}"
        )
    )
    return mismatch_id


async def _settle_mismatch(
    engine: AsyncEngine, mismatch_id: str, state: str, action: str, detail: str
) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            t.mismatches.update().where(t.mismatches.c.mismatch_id == mismatch_id).values(state=state)
        )
        await conn.execute(
            t.actions.insert().values(mismatch_id=mismatch_id, actor="recon", action=action, detail=detail)
        )


async def _auto_fix(engine: AsyncEngine, fixer: OrderFixer | None, m: Mismatch, mismatch_id: str) -> bool:
    """Run the standard procedure of an auto-fixable mismatch; True when it is fixed. Without a fixer
    (propose-only) the mismatch stays open with the procedure proposed."""
    if m.code is Code.FEE_DIFFERS:
        # The settlement was booked with the PSP's fee, so the ledger already carries the difference.
        await _settle_mismatch(engine, mismatch_id, "auto_fixed", "auto_fixed", "booked the PSP's fee")
        return True
    if fixer is None or m.code not in (Code.PSP_CHARGED_ORDER_NOT_SUCCESS, Code.SETTLEMENT_NOT_BOOKED):
        await _settle_mismatch(
            engine, mismatch_id, "open", "proposed", f"standard procedure for {m.code.value}"
        )
        return False
    order_id = m.our_reference.removeprefix("order:")
    if m.code is Code.SETTLEMENT_NOT_BOOKED:
        return await redrive_settlement(fixer, order_id, partial(_settle_mismatch, engine, mismatch_id))
    try:
        order = await fixer.recheck(order_id)
    except DomainError as exc:
        await _settle_mismatch(engine, mismatch_id, "open", "auto_fix_failed", f"{exc.reason}: {exc.message}")
        return False
    if order.state not in CAPTURED:
        await _settle_mismatch(
            engine, mismatch_id, "open", "auto_fix_failed", f"order still {order.state.value}"
        )
        return False
    await _settle_mismatch(
        engine,
        mismatch_id,
        "auto_fixed",
        "auto_fixed",
        f"payment service re-checked the order: {order.state.value}",
    )
    return True


async def reconcile_file(
    engine: AsyncEngine,
    source: BinaryIO,
    records: PaymentRecords,
    booker: SettlementBooker,
    rules: Rules,
    *,
    now: dt.datetime | None = None,
    progress: Callable[[int], None] | None = None,
    expected_window: tuple[dt.datetime, dt.datetime] | None = None,
    fixer: OrderFixer | None = None,
) -> RunReport:
    """Reconcile one settlement file; ``source`` must be seekable (it is read twice). ``progress`` gets byte offsets.

    ``expected_window``: our orders captured in it should be in this or an earlier file; each that is not is
    pending until ``rules.grace`` has passed since its creation, then MISSING_FROM_PSP.
    """
    now = now or dt.datetime.now(dt.UTC)
    report = RunReport(run_id=f"rr_{uuid.uuid4().hex}", state="RUNNING")
    await _start(engine, report.run_id, now)
    try:
        first, last = _validate(source, report)
    except SettlementFileRefused as exc:
        report.state, report.error = "FAILED", exc.message
        await _finish_and_count(engine, report, None, None)
        log.error("settlement file refused", run_id=report.run_id, reason=exc.reason, detail=exc.message)
        return report
    if report.row_error_count:
        report.state = "FAILED"
        report.error = f"{report.row_error_count} malformed row(s); nothing was booked"
        report.rows_read = 0
        await _finish_and_count(engine, report, first, last)
        log.error("settlement file has malformed rows", run_id=report.run_id, rows=report.row_error_count)
        return report
    async with engine.begin() as conn:
        claimed = await conn.execute(
            insert(t.files)
            .values(sha256=report.file_sha256, size_bytes=source.tell(), run_id=report.run_id)
            .on_conflict_do_nothing()
            .returning(t.files.c.sha256)
        )
        if claimed.first() is None:
            report.state = "DUPLICATE_FILE"
            report.rows_read = 0
    if report.state == "DUPLICATE_FILE":
        await _finish_and_count(engine, report, first, last)
        return report
    source.seek(0)
    await _match_and_book(engine, source, records, booker, rules, report, progress, fixer)
    if expected_window is not None:
        await _missing(engine, records, rules, report, expected_window, now)
        found, pending = await missing_payouts(
            engine, records, rules, expected_window, now, report.run_id, _store
        )
        report.pending += pending
        for m in found:
            report.mismatches_by_code[m.code.value] = report.mismatches_by_code.get(m.code.value, 0) + 1
            key = m.classification.value
            report.open_by_classification[key] = report.open_by_classification.get(key, 0) + 1
    report.state = "SUCCEEDED"
    await _finish_and_count(engine, report, first, last)
    if report.open_by_classification.get("unclassified"):
        log.error("settlement run left unclassified mismatches", run_id=report.run_id,
                  count=report.open_by_classification["unclassified"])  # fmt: skip
    return report


async def _match_and_book(
    engine: AsyncEngine,
    source: BinaryIO,
    records: PaymentRecords,
    booker: SettlementBooker,
    rules: Rules,
    report: RunReport,
    progress: Callable[[int], None] | None,
    fixer: OrderFixer | None,
) -> None:
    codes: Tally[str] = Tally()
    classes: Tally[str] = Tally()
    psp: dict[str, Tally[str]] = defaultdict(Tally)
    booked: dict[str, Tally[str]] = defaultdict(Tally)
    for item in SettlementParser(source):
        if not isinstance(item, SettlementRow):  # validated in the first pass; the file has not changed since
            raise RuntimeError("the settlement file changed between the two passes")
        row = item
        totals = psp[f"{row.currency}:{row.reporting_category}"]
        totals.update(gross=row.gross_minor, fee=row.fee_minor, net=row.net_minor, rows=1)
        async with engine.begin() as conn:
            claim = await _claim_row(conn, row, report.run_id)
            if claim == "seen":
                report.already_counted += 1
                continue
            if claim == "duplicate":
                outcome = RowOutcome()
                outcome.mismatches.append(
                    Mismatch(Code.DUPLICATE_ROW, CLASSIFICATION[Code.DUPLICATE_ROW], row.balance_transaction_id,
                             "", row.currency, row.gross_minor, (), row.line)
                )  # fmt: skip
            elif row.reporting_category in CHARGE_CATEGORIES:
                outcome = classify_charge(row, await records.checkout_for(row), rules)
            elif row.reporting_category in REFUND_CATEGORIES:
                outcome = classify_refund(row, await records.refund_for(row))
            elif row.reporting_category in TRANSFER_CATEGORIES:
                payout_id = row.metadata.get("transfer.payout_id", "")
                payout = await records.payout_for(payout_id) if payout_id else None
                outcome = classify_transfer(row, payout_id, payout)
            elif row.reporting_category in OTHER_CATEGORIES:
                outcome = await match_other(row, records)
            else:
                outcome = RowOutcome()
                outcome.mismatches.append(
                    Mismatch(Code.UNMATCHED_ROW, CLASSIFICATION[Code.UNMATCHED_ROW], row.balance_transaction_id,
                             "", row.currency, row.gross_minor, (), row.line)
                )  # fmt: skip
            if outcome.booking is not None:
                # Inside the row's transaction: if the posting fails the claim rolls back and a rerun retries it.
                await booker.book(outcome.booking)
                await conn.execute(
                    t.rows.update()
                    .where(t.rows.c.balance_transaction_id == row.balance_transaction_id)
                    .values(our_reference=outcome.booking.our_reference)
                )
                report.booked += 1
                booked[row.currency].update(gross=row.gross_minor, fee=row.fee_minor)
            elif outcome.reference:  # a pay-out's transfer: the missing-pay-out check looks for it
                await conn.execute(
                    t.rows.update()
                    .where(t.rows.c.balance_transaction_id == row.balance_transaction_id)
                    .values(our_reference=outcome.reference)
                )
            report.matched += int(outcome.matched)
            stored = [(m, await _store(conn, report.run_id, m)) for m in outcome.mismatches]
        # After the row's transaction: an auto-fix calls another service and must not hold the row's locks.
        for m, mismatch_id in stored:
            codes[m.code.value] += 1
            if m.classification is Classification.AUTO_FIXABLE and await _auto_fix(
                engine, fixer, m, mismatch_id
            ):
                report.auto_fixed += 1
            else:
                classes[m.classification.value] += 1
        if progress is not None:
            progress(source.tell())
    report.mismatches_by_code = dict(codes)
    report.open_by_classification = dict(classes)
    report.psp_totals = {k: dict(v) for k, v in psp.items()}
    report.booked_totals = {k: dict(v) for k, v in booked.items()}


MISSING_CHUNK = 1000
"""Our orders are checked against the counted rows a page at a time, so a busy day never sits in memory."""


async def _missing(
    engine: AsyncEngine,
    records: PaymentRecords,
    rules: Rules,
    report: RunReport,
    window: tuple[dt.datetime, dt.datetime],
    now: dt.datetime,
) -> None:
    chunk: list[OurOrder] = []

    async def check() -> None:
        refs = sorted({checkout_reference(o.checkout_id) for o in chunk})
        async with engine.begin() as conn:
            seen = set(
                (
                    await conn.execute(
                        sa.select(t.rows.c.our_reference).where(t.rows.c.our_reference.in_(refs))
                    )
                )
                .scalars()
                .all()
            )
            found, pending = missing_from_psp(chunk, seen, now, rules)
            for m in found:
                await _store(conn, report.run_id, m)
        report.pending += pending
        for m in found:
            report.mismatches_by_code[m.code.value] = report.mismatches_by_code.get(m.code.value, 0) + 1
            key = m.classification.value
            report.open_by_classification[key] = report.open_by_classification.get(key, 0) + 1
        chunk.clear()

    async for order in records.captured_orders(*window):
        chunk.append(order)
        if len(chunk) >= MISSING_CHUNK:
            await check()
    if chunk:
        await check()
