"""Strict, streaming parser of Stripe's itemized balance-change report (``balance_change_from_activity.itemized.3``).

The file is read line by line through a bounded reader, so memory stays flat whatever its size: no line may be
longer than ``max_line_chars`` and no field longer than the csv module's field limit we set. A file that is not a
settlement report (empty, not UTF-8, another report's columns, another delimiter, garbage) is refused whole with
:class:`SettlementFileRefused` before any row is produced. Inside a good file each malformed row becomes a
:class:`RowError` with its line number and a stable reason, and parsing goes on, so one bad row never hides the
others. Money columns are major units; each is converted exactly with the currency's ISO 4217 exponent and
refused when it has more decimals than the currency allows (never through float).

The SHA-256 of the bytes read is available once the rows are exhausted: the same file ingested twice is
recognised by it.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import operator
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from svckit.errors import InvalidArgument
from svckit.money import MAX_MINOR_DIGITS, exponent, is_known_currency
from svckit.reasons import Reason

REQUIRED_COLUMNS: tuple[str, ...] = (
    "balance_transaction_id",
    "created_utc",
    "currency",
    "gross",
    "fee",
    "net",
    "reporting_category",
    "source_id",
)
"""What a row cannot be matched or booked without; every other column is optional."""

_METADATA_RE = re.compile(r"^(payment|refund|transfer)_metadata\[([^\]]{1,40})\]$")

# Every category of 16.1.0's ReportRunCreateParamsParameters.reporting_category and the reporting-categories page.
REPORTING_CATEGORIES = frozenset(
    {
        "advance",
        "advance_funding",
        "anticipation_repayment",
        "charge",
        "charge_failure",
        "climate_order_purchase",
        "climate_order_refund",
        "connect_collection_transfer",
        "connect_reserved_funds",
        "contribution",
        "dispute",
        "dispute_reversal",
        "fee",
        "financing_paydown",
        "financing_paydown_reversal",
        "financing_payout",
        "financing_payout_reversal",
        "issuing_authorization_hold",
        "issuing_authorization_release",
        "issuing_dispute",
        "issuing_transaction",
        "network_cost",
        "other_adjustment",
        "partial_capture_reversal",
        "payment_network_reserve_hold",
        "payment_network_reserve_release",
        "payout",
        "payout_minimum_balance_hold",
        "payout_minimum_balance_release",
        "payout_reversal",
        "platform_earning",
        "platform_earning_refund",
        "refund",
        "refund_failure",
        "risk_reserved_funds",
        "tax",
        "topup",
        "topup_reversal",
        "transfer",
        "transfer_reversal",
        "unreconciled_customer_funds",
    }
)

DEFAULT_MAX_LINE_CHARS = 64 * 1024
"""A real row is well under 2 KiB even with every address column; 64 Ki characters leave room for long metadata.
A quoted field spanning lines is bounded by the csv module's field limit (128 KiB by default)."""
_SIGNED_DECIMAL_RE = re.compile(r"(-?)(0|[1-9][0-9]*)(?:\.([0-9]+))?\Z")
_TIMESTAMP_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}\Z")
_ID_RE = re.compile(r"[A-Za-z0-9_]{1,255}\Z")
_OTHER_DELIMITERS = (";", "\t", "|")
_EPOCH_DAY = dt.date(1970, 1, 1)


class SettlementFileRefused(InvalidArgument):
    """The file as a whole is not a readable settlement report; nothing of it may be used."""

    def __init__(self, message: str, line: int) -> None:
        super().__init__(Reason.SETTLEMENT_FILE_REFUSED, f"line {line}: {message}", line=str(line))
        self.line = line


Record = tuple[Any, ...]
"""A validated row as plain values (marshal can write them): line, balance_transaction_id, created_utc as Unix
seconds, currency, gross, fee, net (minor units), reporting_category, source_id, charge_id, payment_intent_id,
description, automatic_payout_id, connected_account_id, dispute_reason, metadata (a dict)."""

_RECORD_TEXT_COLUMNS: tuple[str, ...] = (
    "charge_id",
    "payment_intent_id",
    "description",
    "automatic_payout_id",
    "connected_account_id",
    "dispute_reason",
)
"""The optional text columns in the order of a :data:`Record` (and of SettlementRow's fields)."""

_MAX_CACHED_DAYS = 1000
_MAX_CACHED_MINUTES = 10_000
"""A day's file has 1,440 minutes; bounded like the days for a file of many."""
"""A day's file has one or two dates; a garbage file may have many, so the cache of parsed dates is bounded."""


# Not frozen: a frozen dataclass sets each of its 16 fields through object.__setattr__, several µs per row (a
# quarter of a run's CPU at 1,000,000 rows); nothing changes a row after it is built.
@dataclass(slots=True)
class SettlementRow:
    """One balance transaction of the report, money in integer minor units."""

    line: int
    balance_transaction_id: str
    created_utc: dt.datetime
    currency: str
    """Upper-case ISO 4217 code (the file writes ``usd``)."""
    gross_minor: int
    fee_minor: int
    net_minor: int
    reporting_category: str
    source_id: str
    charge_id: str = ""
    payment_intent_id: str = ""
    description: str = ""
    automatic_payout_id: str = ""
    connected_account_id: str = ""
    dispute_reason: str = ""
    metadata: Mapping[str, str] = field(default_factory=dict)
    """``payment_metadata[k]`` → ``payment.k``, ``refund_metadata[k]`` → ``refund.k``, ``transfer_metadata[k]`` → ``transfer.k``."""

    def to_record(self) -> tuple[Any, ...]:
        """The row as plain values (:mod:`marshal` can write them): a validated row spooled for the second pass."""
        return (self.line, self.balance_transaction_id, int(self.created_utc.timestamp()), self.currency,
                self.gross_minor, self.fee_minor, self.net_minor, self.reporting_category, self.source_id,
                self.charge_id, self.payment_intent_id, self.description, self.automatic_payout_id,
                self.connected_account_id, self.dispute_reason, dict(self.metadata))  # fmt: skip

    @classmethod
    def from_record(cls, r: tuple[Any, ...]) -> SettlementRow:
        return cls(r[0], r[1], dt.datetime.fromtimestamp(r[2], dt.UTC), *r[3:])


@dataclass(frozen=True, slots=True)
class RowError:
    line: int
    reason: str
    """Stable UPPER_SNAKE code: WRONG_COLUMN_COUNT, INVALID_ID, INVALID_TIMESTAMP, UNKNOWN_CURRENCY,
    INVALID_AMOUNT, AMOUNT_PRECISION_EXCEEDED, NET_MISMATCH, UNKNOWN_REPORTING_CATEGORY."""
    message: str


class _RowInvalid(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class _HashingReader(io.RawIOBase):
    """Passes bytes through while hashing them (unless ``hashing`` is off) and counting them, at most ``limit``."""

    def __init__(self, source: BinaryIO, *, hashing: bool = True, limit: int | None = None) -> None:
        self._source = source
        self.digest = hashlib.sha256() if hashing else None
        self.size = 0
        self._limit = limit

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:  # a writable buffer (memoryview or bytearray), per io's protocol
        want = len(buffer) if self._limit is None else min(len(buffer), self._limit - self.size)
        data = self._source.read(want) if want > 0 else b""
        n = len(data)
        buffer[:n] = data
        if self.digest is not None:
            self.digest.update(data)
        self.size += n
        return n


class _LineTooLong(Exception):
    pass


def _bounded_lines(text: io.TextIOBase, limit: int) -> Iterator[str]:
    """Lines of at most ``limit`` characters; a longer one stops the file (a reader cannot resync inside it)."""
    while True:
        line = text.readline(limit + 1)
        if not line:
            return
        if len(line) > limit:
            raise _LineTooLong
        yield line


def minor_units(text: str, currency: str, column: str, exp: int | None = None) -> int:
    """A signed major-unit decimal (``-12.30``) → minor units, exactly, with the currency's exponent.

    ``exp`` is the currency's exponent when the caller already looked it up (the parser does, once per row)."""
    if exp and text.isascii():
        # The usual form, exactly the currency's decimals ("-12.30" USD), checked without the regex (three per
        # row: about 1 µs of a row's 7 in the first pass); anything else takes the full path below.
        point = len(text) - exp - 1
        if point > 0 and text[point] == ".":
            whole, frac = text[:point], text[point + 1 :]
            negative = whole[0] == "-"
            if negative:
                whole = whole[1:]
            if (
                whole.isdigit()  # ASCII: [0-9] only
                and frac.isdigit()
                and (whole[0] != "0" or len(whole) == 1)
                and len(whole) + exp <= MAX_MINOR_DIGITS
            ):
                value = int(whole + frac)
                return -value if negative else value
    match = _SIGNED_DECIMAL_RE.match(text)
    if match is None:
        shown = text if len(text) <= 30 else text[:30] + "..."
        raise _RowInvalid(
            "INVALID_AMOUNT", f"{column} {shown!r} is not a plain decimal with '.' as separator"
        )
    sign, whole, frac = match.groups("")
    if exp is None:
        exp = exponent(currency)
    if len(frac) > exp:
        raise _RowInvalid(
            "AMOUNT_PRECISION_EXCEEDED", f"{column} {text!r} has {len(frac)} decimals; {currency} has {exp}"
        )
    if len(whole) + exp > MAX_MINOR_DIGITS:
        raise _RowInvalid("INVALID_AMOUNT", f"{column} {text[:30]!r} is too large")
    # One int() of the digits with the fraction padded to the exponent: exact, and the cheapest way per row.
    value = int(whole + frac + "0" * (exp - len(frac)))
    return -value if sign else value


class SettlementParser:
    """Iterate to get rows and row errors in file order; then ``sha256`` and ``size_bytes`` describe the file.

    A byte range of a file (a worker's share of the first pass, parse_ranges.py) is parsed with ``header``, the
    file's column names the caller read already (the range starts at a record, after the header), and ``limit``,
    the range's length in bytes; its line numbers then count from the range's first line (line 1), and it is not
    hashed (the caller hashes the whole file)."""

    def __init__(
        self,
        source: BinaryIO,
        *,
        max_line_chars: int = DEFAULT_MAX_LINE_CHARS,
        header: list[str] | None = None,
        limit: int | None = None,
    ) -> None:
        self._raw = _HashingReader(source, hashing=header is None and limit is None, limit=limit)
        self._max_line = max_line_chars
        self._header_names = header
        self._done = False
        self.lines_read = 0
        """Physical lines read once the rows are exhausted (quoted newlines count, as in the line numbers)."""

    @property
    def sha256(self) -> str:
        if not self._done:
            raise RuntimeError("the file's hash is known once every row has been read")
        if self._raw.digest is None:
            raise RuntimeError("a range of a file is not hashed")
        return self._raw.digest.hexdigest()

    @property
    def size_bytes(self) -> int:
        return self._raw.size

    def __iter__(self) -> Iterator[SettlementRow | RowError]:
        row = SettlementRow.from_record
        for item in self.records():
            yield item if isinstance(item, RowError) else row(item)

    def records(self) -> Iterator[Record | RowError]:
        """Like iterating, with each good row as its plain values (:meth:`SettlementRow.to_record`'s form):
        what a caller that only spools the rows needs, without an object and a datetime per row."""
        # utf-8-sig: a spreadsheet that saved the report adds a BOM; it is not part of the first column's name.
        # A range after the header starts at a record: a BOM can only be at the file's first byte.
        encoding = "utf-8-sig" if self._header_names is None else "utf-8"
        text = io.TextIOWrapper(io.BufferedReader(self._raw), encoding=encoding, errors="strict", newline="")
        reader = csv.reader(_bounded_lines(text, self._max_line), strict=True)
        try:
            columns = _Columns(self._header_names if self._header_names is not None else self._header(reader))
            while True:
                try:
                    cells = next(reader)
                except StopIteration:
                    break
                if not cells:
                    continue  # a blank line (e.g. a trailing one) carries nothing
                yield columns.record(reader.line_num, cells)
        except _LineTooLong:
            raise SettlementFileRefused(
                f"a line is longer than {self._max_line} characters: not a settlement report",
                reader.line_num + 1,
            ) from None
        except UnicodeDecodeError:
            raise SettlementFileRefused("the file is not UTF-8 text", reader.line_num + 1) from None
        except csv.Error as exc:
            # Strict CSV: a quote opened and never closed (a truncated file) or a stray quote.
            raise SettlementFileRefused(f"malformed CSV ({exc})", reader.line_num) from None
        # Drain what the csv reader did not need (nothing for a well-formed file) so the hash covers every byte.
        while self._raw.read(1 << 16):
            pass
        self.lines_read = reader.line_num
        self._done = True

    def header(self) -> list[str]:
        """Only the header's column names (validated: a file that is not a settlement report is refused)."""
        text = io.TextIOWrapper(
            io.BufferedReader(self._raw), encoding="utf-8-sig", errors="strict", newline=""
        )
        reader = csv.reader(_bounded_lines(text, self._max_line), strict=True)
        try:
            return self._header(reader)
        except _LineTooLong:
            raise SettlementFileRefused(
                f"a line is longer than {self._max_line} characters: not a settlement report",
                reader.line_num + 1,
            ) from None
        except UnicodeDecodeError:
            raise SettlementFileRefused("the file is not UTF-8 text", reader.line_num + 1) from None
        except csv.Error as exc:
            raise SettlementFileRefused(f"malformed CSV ({exc})", reader.line_num) from None

    def _header(self, reader: Iterator[list[str]]) -> list[str]:
        try:
            header = next(reader)
        except StopIteration:
            raise SettlementFileRefused(
                "the file is empty: a settlement report starts with its header", 1
            ) from None
        names = [h.strip() for h in header]
        if len(set(names)) != len(names):
            raise SettlementFileRefused("the header names a column twice", 1)
        missing = [c for c in REQUIRED_COLUMNS if c not in names]
        if missing:
            joined = ",".join(header)
            hint = next(
                (f"; it looks {d!r}-delimited, a settlement report is comma-separated" for d in _OTHER_DELIMITERS
                 if joined.count(d) >= 3 and "balance_transaction_id" in joined),
                "",
            )  # fmt: skip
            raise SettlementFileRefused(
                "not a balance_change_from_activity.itemized report: missing column(s) "
                + ", ".join(missing)
                + hint,
                1,
            )
        return names


def _invalid_timestamp(raw: str) -> _RowInvalid:
    return _RowInvalid("INVALID_TIMESTAMP", f"created_utc {raw[:30]!r} is not YYYY-MM-DD HH:MM:SS")


class _Columns:
    def __init__(self, header: list[str]) -> None:
        self.width = len(header)
        self.index = {name: i for i, name in enumerate(header)}
        # Per-file caches of the hot path: a file has a handful of currencies, and its rows' timestamps come
        # in order, many sharing a second. Each cache holds only values that passed validation.
        self._currencies: dict[str, tuple[str, int]] = {}
        self._minutes: dict[str, int] = {}
        """``YYYY-MM-DD HH:MM:`` → its Unix seconds: a file's rows come in time order, many in each minute."""
        self._days: dict[str, int] = {}
        ix = self.index
        self._ix = tuple(ix[c] for c in REQUIRED_COLUMNS)
        # The optional text columns picked in one C call; a column the file lacks reads the empty cell that
        # _parse appends after the row's last one (index width).
        self.optional = operator.itemgetter(*[self.index.get(c, self.width) for c in _RECORD_TEXT_COLUMNS])
        self.metadata: list[tuple[str, int]] = []
        for i, name in enumerate(header):
            m = _METADATA_RE.match(name)
            if m:
                self.metadata.append((f"{m.group(1)}.{m.group(2)}", i))

    def record(self, line: int, cells: list[str]) -> Record | RowError:
        if len(cells) != self.width:
            return RowError(
                line, "WRONG_COLUMN_COUNT", f"{len(cells)} fields where the header has {self.width}"
            )
        try:
            return self._parse(line, cells)
        except _RowInvalid as exc:
            return RowError(line, exc.reason, exc.message)

    def _created(self, raw: str) -> int:
        """``YYYY-MM-DD HH:MM:SS`` (UTC) as Unix seconds: the date parsed once per file (cached), the time from
        its digits, checked as strictly as ``datetime.fromisoformat`` would."""
        known = self._minutes.get(raw[:17])
        if known is not None:  # "YYYY-MM-DD HH:MM:" checked before: only the seconds are left
            seconds = raw[17:]
            if len(seconds) == 2 and seconds.isascii() and seconds.isdigit() and seconds < "60":
                return known + int(seconds)
        if _TIMESTAMP_RE.match(raw) is None:
            raise _invalid_timestamp(raw)
        day = self._days.get(raw[:10])
        if day is None:
            try:
                day = (dt.date.fromisoformat(raw[:10]) - _EPOCH_DAY).days * 86400
            except ValueError:
                raise _invalid_timestamp(raw) from None
            if len(self._days) >= _MAX_CACHED_DAYS:
                self._days.clear()
            self._days[raw[:10]] = day
        hour, minute, second = int(raw[11:13]), int(raw[14:16]), int(raw[17:19])
        if hour > 23 or minute > 59 or second > 59:
            raise _invalid_timestamp(raw)
        if len(self._minutes) >= _MAX_CACHED_MINUTES:
            self._minutes.clear()
        self._minutes[raw[:17]] = day + hour * 3600 + minute * 60
        return day + hour * 3600 + minute * 60 + second

    def _currency(self, raw: str) -> tuple[str, int]:
        known = self._currencies.get(raw)
        if known is not None:
            return known
        currency = raw.upper()
        if len(currency) != 3 or not currency.isalpha() or not is_known_currency(currency):
            raise _RowInvalid("UNKNOWN_CURRENCY", f"currency {raw[:10]!r} is not an ISO 4217 code")
        self._currencies[raw] = known = (currency, exponent(currency))
        return known

    def _parse(self, line: int, cells: list[str]) -> Record:
        i_bt, i_created, i_currency, i_gross, i_fee, i_net, i_category, i_source = self._ix
        bt_id = cells[i_bt]
        if _ID_RE.match(bt_id) is None:
            raise _RowInvalid("INVALID_ID", "balance_transaction_id is empty or not a PSP id")
        source_id = cells[i_source]
        if source_id and _ID_RE.match(source_id) is None:
            raise _RowInvalid("INVALID_ID", "source_id is not a PSP id")
        created = self._created(cells[i_created])
        currency, exp = self._currency(cells[i_currency])
        gross = minor_units(cells[i_gross], currency, "gross", exp)
        fee = minor_units(cells[i_fee], currency, "fee", exp)
        net = minor_units(cells[i_net], currency, "net", exp)
        if gross - fee != net:
            raise _RowInvalid("NET_MISMATCH", f"net {net} is not gross {gross} minus fee {fee} (minor units)")
        category = cells[i_category]
        if category not in REPORTING_CATEGORIES:
            raise _RowInvalid(
                "UNKNOWN_REPORTING_CATEGORY", f"reporting_category {category[:40]!r} is unknown"
            )
        cells.append("")
        metadata = {key: cells[i] for key, i in self.metadata if cells[i]}
        return (
            line,
            bt_id,
            created,
            currency,
            gross,
            fee,
            net,
            category,
            source_id,
            *self.optional(cells),
            metadata,
        )
