"""The first pass: every row of the file checked, the bytes hashed, and each good row's values spooled to a
temporary file (marshal, one block per chunk), so the second pass reads plain values instead of parsing and
checking the CSV again, and never depends on the file staying the same."""

from __future__ import annotations

import datetime as dt
import marshal
from typing import Any, BinaryIO

from recon_svc.settlement.parse import RowError, SettlementParser, SettlementRow
from recon_svc.settlement.report import RunReport

MAX_REPORTED_ROW_ERRORS = 100
"""A broken file may have a million bad rows; the run keeps the first ones (and counts them all)."""


def validate(
    source: BinaryIO, report: RunReport, spool: BinaryIO, chunk_rows: int
) -> tuple[dt.datetime | None, dt.datetime | None]:
    """Check and spool the whole file; the first and last ``created_utc`` of its rows. Row errors are counted
    in ``report`` (and once there is one, nothing more is spooled: a file with a bad row books nothing)."""
    parser = SettlementParser(source)
    first = last = None
    block: list[tuple[Any, ...]] = []
    for item in parser:
        if isinstance(item, RowError):
            report.row_error_count += 1
            if len(report.row_errors) < MAX_REPORTED_ROW_ERRORS:
                report.row_errors.append({"line": item.line, "reason": item.reason, "message": item.message})
            continue
        report.rows_read += 1
        first = item.created_utc if first is None else min(first, item.created_utc)
        last = item.created_utc if last is None else max(last, item.created_utc)
        if not report.row_error_count:
            block.append(item.to_record())
            if len(block) >= chunk_rows:  # one marshal record per chunk: one load each, not one per row
                marshal.dump(block, spool)
                block = []
    if block and not report.row_error_count:
        marshal.dump(block, spool)
    report.file_sha256 = parser.sha256
    return first, last


def read_block(spool: BinaryIO) -> list[SettlementRow]:
    """The next block of rows :func:`validate` spooled; empty at the end."""
    try:
        block = marshal.load(spool)
    except EOFError:
        return []
    row = SettlementRow.from_record
    return [row(r) for r in block]
