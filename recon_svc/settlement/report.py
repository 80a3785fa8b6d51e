"""What a settlement run reports (kept as JSON on the run) and the per-phase times the benchmark prints."""

from __future__ import annotations

from collections import Counter as Tally
from dataclasses import asdict, dataclass, field
from typing import Any


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

    def count_open(self, code: str, classification: str) -> None:
        """One more mismatch left open (the checks after the file's rows add theirs this way)."""
        self.mismatches_by_code[code] = self.mismatches_by_code.get(code, 0) + 1
        self.open_by_classification[classification] = self.open_by_classification.get(classification, 0) + 1


@dataclass
class Tallies:
    """What the chunks add up while the file's rows are reconciled; folded into the report at the end."""

    codes: Tally[str] = field(default_factory=Tally)
    classes: Tally[str] = field(default_factory=Tally)
    psp: dict[str, list[int]] = field(default_factory=dict)
    """``<CUR>:<category>`` → [gross, fee, net, rows]: plain lists, as Counter.update costs µs per row."""
    booked: dict[str, list[int]] = field(default_factory=dict)
    """``<CUR>`` → [gross, fee]."""

    def into(self, report: RunReport) -> None:
        report.mismatches_by_code = dict(self.codes)
        report.open_by_classification = dict(self.classes)
        report.psp_totals = {
            k: {"gross": v[0], "fee": v[1], "net": v[2], "rows": v[3]} for k, v in self.psp.items()
        }
        report.booked_totals = {k: {"gross": v[0], "fee": v[1]} for k, v in self.booked.items()}


@dataclass
class PhaseTimes:
    """Seconds spent per phase of a run (the benchmark prints them; a run's report does not keep them)."""

    parse: float = 0.0
    """Validating and hashing (first pass) and parsing again (second pass)."""
    match: float = 0.0
    """Fetching our records for the rows (payment service)."""
    classify: float = 0.0
    """Comparing in memory, claiming the rows and writing mismatches (recon database)."""
    book: float = 0.0
    """Posting the chunks' bookings (ledger) and marking them posted."""
