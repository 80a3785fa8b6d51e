"""The first pass split by byte ranges: the parent copies the file once (hashing it and counting its quotes as it
goes, all in C: about 0.3 s for 127 MiB), then cuts it at record ends so each worker validates and spools a range.

A newline ends a record unless it is inside a quoted field, and it is inside one exactly when an odd number of
quotes comes before it (an escaped quote is two quotes, so it keeps the parity). A quote inside an unquoted field
(which the csv module reads as a plain character) breaks that rule; a cut it misplaces lands inside a quoted
field, the range before it then ends inside a quote and is refused, and the caller validates the file in one
process instead (workers.py), so a wrong cut costs time, never a wrong answer.

The copy is the run's own: the workers read it, not the caller's file, so the rows checked are the bytes hashed
even if the caller's file changes meanwhile.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import BinaryIO

BLOCK = 1 << 20
"""Bytes per read of the copy; the quote count is kept per block, so a cut reads back one window of it."""

_SEARCH_WINDOW = 1 << 16


@dataclass(frozen=True)
class Copied:
    size: int
    sha256: str
    quotes_before: list[int]
    """The count of quote bytes before each block of ``BLOCK`` bytes of the copy."""
    newlines_in_first_block: int


def copy_and_hash(source: BinaryIO, into: BinaryIO) -> Copied:
    """Copy ``source`` from its position to its end into ``into``: its size, SHA-256 and quote index."""
    digest = hashlib.sha256()
    size = quotes = 0
    quotes_before: list[int] = []
    newlines = -1
    while True:
        data = source.read(BLOCK)
        if not data:
            break
        # Reads may come short (a pipe, an upload): the index needs whole blocks, so refill up to BLOCK.
        while len(data) < BLOCK:
            more = source.read(BLOCK - len(data))
            if not more:
                break
            data += more
        quotes_before.append(quotes)
        if newlines < 0:
            newlines = data.count(b"\n")
        digest.update(data)
        into.write(data)
        if b'"' in data:  # a memchr; most settlement files quote nothing
            quotes += data.count(b'"')
        size += len(data)
    into.flush()
    return Copied(size, digest.hexdigest(), quotes_before, max(newlines, 0))


def estimated_rows(copied: Copied) -> int:
    """The file's rows as its size times the first block's lines per byte: enough to choose workers or not."""
    first = min(copied.size, BLOCK)
    return copied.size * copied.newlines_in_first_block // first if first else 0


def cuts(copy: BinaryIO, copied: Copied, parts: int) -> list[int]:
    """Offsets where the ranges start: 0, then for each of the ``parts - 1`` others the first record end at or
    after its even share of the bytes (fewer ranges when a quoted field spans a whole share). The first range
    holds the header."""
    starts = [0]
    header_end = _record_end(copy, copied, 0, copied.size)
    if header_end is None:
        return starts
    for k in range(1, parts):
        target = max(copied.size * k // parts, header_end, starts[-1] + 1)
        limit = copied.size * (k + 1) // parts if k + 1 < parts else copied.size
        cut = _record_end(copy, copied, target, limit)
        if cut is not None and cut < copied.size and cut > starts[-1]:
            starts.append(cut)
    return starts


def _record_end(copy: BinaryIO, copied: Copied, start: int, limit: int) -> int | None:
    """The offset just after the first newline outside quotes at or after ``start`` and before ``limit``."""
    block = start // BLOCK
    if block >= len(copied.quotes_before):
        return None
    copy.seek(block * BLOCK)
    quotes = copied.quotes_before[block] + copy.read(start - block * BLOCK).count(b'"')
    at = start
    while at < limit:
        window = copy.read(min(_SEARCH_WINDOW, limit - at))
        if not window:
            return None
        seen = 0
        while True:
            newline = window.find(b"\n", seen)
            if newline < 0:
                quotes += window.count(b'"', seen)
                break
            quotes += window.count(b'"', seen, newline)
            if quotes % 2 == 0:
                return at + newline + 1
            seen = newline + 1
        at += len(window)
    return None
