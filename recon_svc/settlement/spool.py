"""The first pass: every row of the file checked, the bytes hashed, and each good row's values spooled to a
temporary file (marshal, one block per chunk), so the second pass reads plain values instead of parsing and
checking the CSV again, and never depends on the file staying the same.

Each block is written as its length (8 bytes) and ``marshal.dumps`` of its rows, and read back with one read and
one ``marshal.loads``: ``marshal.load`` on a file object reads it a few bytes per value, which cost more than
everything else done with a row in the second pass."""

from __future__ import annotations

import datetime as dt
import marshal
from typing import BinaryIO

from recon_svc.settlement.parse import Record, RowError, SettlementParser, SettlementRow
from recon_svc.settlement.report import RunReport

MAX_REPORTED_ROW_ERRORS = 100
"""A broken file may have a million bad rows; the run keeps the first ones (and counts them all)."""


def validate(
    source: BinaryIO, report: RunReport, spool: BinaryIO, chunk_rows: int, offsets: list[int] | None = None
) -> tuple[dt.datetime | None, dt.datetime | None]:
    """Check and spool the whole file; the first and last ``created_utc`` of its rows. Row errors are counted
    in ``report`` (and once there is one, nothing more is spooled: a file with a bad row books nothing).
    ``offsets`` gets each spooled block's position (workers read disjoint blocks)."""
    parser = SettlementParser(source)
    first, last = spool_rows(parser, report, spool, chunk_rows, offsets)
    report.file_sha256 = parser.sha256
    if first is None or last is None:
        return None, None
    return dt.datetime.fromtimestamp(first, dt.UTC), dt.datetime.fromtimestamp(last, dt.UTC)


def spool_rows(
    parser: SettlementParser, report: RunReport, spool: BinaryIO, chunk_rows: int, offsets: list[int] | None
) -> tuple[int | None, int | None]:
    """:func:`validate` with the parser given (a whole file, or a worker's range of one): the first and last
    ``created_utc`` as Unix seconds."""
    first = last = None
    block: list[Record] = []
    for item in parser.records():
        if isinstance(item, RowError):
            report.row_error_count += 1
            if len(report.row_errors) < MAX_REPORTED_ROW_ERRORS:
                report.row_errors.append({"line": item.line, "reason": item.reason, "message": item.message})
            continue
        report.rows_read += 1
        created = item[2]  # Unix seconds
        if first is None or created < first:
            first = created
        if last is None or created > last:
            last = created
        if not report.row_error_count:
            block.append(item)
            if len(block) >= chunk_rows:  # one marshal record per chunk: one load each, not one per row
                _write_block(spool, block, offsets)
                block = []
    if block and not report.row_error_count:
        _write_block(spool, block, offsets)
    return first, last


def _write_block(spool: BinaryIO, block: list[Record], offsets: list[int] | None) -> None:
    if offsets is not None:
        offsets.append(spool.tell())
    data = marshal.dumps(block)
    spool.write(len(data).to_bytes(8, "little"))
    spool.write(data)


def read_records(spool: BinaryIO, line_offset: int = 0) -> list[Record]:
    """The next block of records :func:`validate` spooled, as plain values; empty at the end. ``line_offset``:
    the lines of the file before the range a worker spooled (its line numbers count from the range's start)."""
    size = spool.read(8)
    if not size:
        return []
    records: list[Record] = marshal.loads(spool.read(int.from_bytes(size, "little")))
    if line_offset:
        return [(r[0] + line_offset, *r[1:]) for r in records]
    return records


class RowMaker:
    """Spooled records into rows, one datetime per second of ``created_utc`` (a day's rows share their
    seconds)."""

    def __init__(self) -> None:
        self._created: dict[int, dt.datetime] = {}

    def __call__(self, r: Record) -> SettlementRow:
        at = self._created.get(r[2])
        if at is None:
            at = self._created[r[2]] = dt.datetime.fromtimestamp(r[2], dt.UTC)
        return SettlementRow(r[0], r[1], at, *r[3:])


def read_block(spool: BinaryIO, line_offset: int = 0) -> list[SettlementRow]:
    """:func:`read_records` as rows."""
    row = RowMaker()
    return [row(r) for r in read_records(spool, line_offset)]
