"""Rules of reconciliation. Transport-free: plain values and the unit of work in, domain values or
DomainError out. Every comparison is recorded as a run (``reconciliation_runs``): RUNNING when it
starts, then SUCCEEDED with its outcome and counts, or FAILED with the reason of the error that
stopped it."""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from recon_svc import repository
from recon_svc.books import LedgerReader, WalletReader
from recon_svc.record_checks import RecordChecker, RecordCheckReport
from recon_svc.uow import ReconUnitOfWork
from svckit import pagination
from svckit.errors import DomainError, FailedPrecondition
from svckit.logging import get_logger

log = get_logger(__name__)

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100


class RunState(enum.StrEnum):
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"


class RunKind(enum.StrEnum):
    SETTLEMENT_FILE = "SETTLEMENT_FILE"
    WALLET_LEDGER = "WALLET_LEDGER"


@dataclass(frozen=True)
class Run:
    run_id: str
    state: RunState
    interval_start: datetime | None
    interval_end: datetime | None
    created_at: datetime
    kind: RunKind = RunKind.SETTLEMENT_FILE
    finished_at: datetime | None = None
    ok: bool = False
    wallets_checked: int = 0
    accounts_checked: int = 0
    mismatch_count: int = 0
    failure_reason: str = ""


class MismatchKind(enum.StrEnum):
    AMOUNT_DIFFERS = "AMOUNT_DIFFERS"
    ACCOUNT_MISSING = "ACCOUNT_MISSING"
    WALLET_MISSING = "WALLET_MISSING"
    CURRENCY_DIFFERS = "CURRENCY_DIFFERS"


@dataclass(frozen=True)
class Mismatch:
    seller_id: str
    currency: str
    kind: MismatchKind
    wallet_minor: int
    ledger_minor: int


@dataclass(frozen=True)
class WalletLedgerReport:
    wallets_checked: int
    accounts_checked: int
    mismatches: list[Mismatch]

    @property
    def ok(self) -> bool:
        return not self.mismatches


async def compare_wallets_with_ledger(
    wallets: WalletReader, ledger: LedgerReader, seller_id: str = ""
) -> WalletLedgerReport:
    """Every wallet (seller, currency), available + reserved, must equal the ledger's
    ``liability:seller_payable:<seller>/<currency>`` account.

    A seller has one wallet and one payable account per currency; an account whose name carries
    another currency than it holds is reported as CURRENCY_DIFFERS (the ledger refuses to make one).
    """
    by_key: dict[tuple[str, str], int] = {}
    wallets_checked = 0
    async for w in wallets.wallets(seller_id):
        wallets_checked += 1
        by_key[(w.seller_id, w.currency)] = w.total_minor
    accounts: dict[tuple[str, str], int] = {}
    accounts_checked = 0
    mismatches: list[Mismatch] = []
    async for a in ledger.seller_payables(seller_id):
        accounts_checked += 1
        if a.named_currency is not None and a.named_currency != a.currency:
            mismatches.append(
                Mismatch(a.seller_id, a.named_currency, MismatchKind.CURRENCY_DIFFERS, 0, a.balance_minor)
            )
            continue
        key = (a.seller_id, a.currency)
        accounts[key] = accounts.get(key, 0) + a.balance_minor
    for (seller, currency), wallet_minor in sorted(by_key.items()):
        ledger_minor = accounts.get((seller, currency))
        if ledger_minor is None:
            if wallet_minor:
                mismatches.append(Mismatch(seller, currency, MismatchKind.ACCOUNT_MISSING, wallet_minor, 0))
        elif ledger_minor != wallet_minor:
            mismatches.append(
                Mismatch(seller, currency, MismatchKind.AMOUNT_DIFFERS, wallet_minor, ledger_minor)
            )
    for (seller, currency), ledger_minor in sorted(accounts.items()):
        if (seller, currency) not in by_key and ledger_minor:
            mismatches.append(Mismatch(seller, currency, MismatchKind.WALLET_MISSING, 0, ledger_minor))
    return WalletLedgerReport(wallets_checked, accounts_checked, mismatches)


def _run(row: Any) -> Run:
    return Run(
        run_id=row.run_id,
        state=RunState(row.state),
        interval_start=row.interval_start,
        interval_end=row.interval_end,
        created_at=row.created_at,
        kind=RunKind(row.kind),
        finished_at=row.finished_at,
        ok=bool(row.ok),
        wallets_checked=row.wallets_checked or 0,
        accounts_checked=row.accounts_checked or 0,
        mismatch_count=row.mismatch_count or 0,
        failure_reason=row.failure_reason or "",
    )


class ReconService:
    def __init__(
        self, wallets: WalletReader, ledger: LedgerReader, records: RecordChecker | None = None
    ) -> None:
        self._wallets = wallets
        self._ledger = ledger
        self._records = records

    async def list_runs(self, uow: ReconUnitOfWork, page_size: int, page_token: str) -> tuple[list[Run], str]:
        size = pagination.page_size(page_size, default=DEFAULT_PAGE_SIZE, maximum=MAX_PAGE_SIZE)
        before = pagination.decode_token(page_token, ["runs"], int)
        async with uow.read() as conn:
            rows = await repository.list_runs(conn, size + 1, before)
        page, more = rows[:size], len(rows) > size
        return [_run(r) for r in page], pagination.encode_token(["runs"], page[-1].id) if more else ""

    async def compare_wallets_with_ledger(
        self, uow: ReconUnitOfWork, seller_id: str = ""
    ) -> tuple[Run, WalletLedgerReport]:
        """The wallets against the ledger alone (:meth:`internal_checks` without a window)."""
        run, report, _ = await self.internal_checks(uow, seller_id)
        return run, report

    async def internal_checks(
        self,
        uow: ReconUnitOfWork,
        seller_id: str = "",
        window: tuple[datetime, datetime] | None = None,
    ) -> tuple[Run, WalletLedgerReport, RecordCheckReport | None]:
        """Compare the wallets with the ledger (``compare_wallets_with_ledger``) and, with a ``window``, the
        window's records with the books (record_checks.py), recorded as one run.

        The run is committed as RUNNING before the books are read (no connection is held while the
        other services answer), then finished in a second transaction. A comparison that fails is
        recorded FAILED with its reason, and its error raised.
        """
        run_id = f"rcn_{uuid.uuid4().hex}"
        async with uow.transaction() as conn:
            await repository.start_run(conn, run_id, RunKind.WALLET_LEDGER.value)
        records: RecordCheckReport | None = None
        try:
            report = await compare_wallets_with_ledger(self._wallets, self._ledger, seller_id)
            if window is not None:
                if self._records is None:
                    raise FailedPrecondition(
                        "INTERNAL_CHECKS_UNAVAILABLE", "per-record checks are not configured here"
                    )
                records = await self._records.check(window, run_id)
        except Exception as exc:
            reason = exc.reason if isinstance(exc, DomainError) else "INTERNAL"
            async with uow.transaction() as conn:
                await repository.finish_run(conn, run_id, RunState.FAILED.value, failure_reason=reason)
            log.warning("wallet-ledger comparison failed", run_id=run_id, reason=reason)
            raise
        async with uow.transaction() as conn:
            row = await repository.finish_run(
                conn,
                run_id,
                RunState.SUCCEEDED.value,
                ok=report.ok and not (records and records.mismatch_count),
                wallets_checked=report.wallets_checked,
                accounts_checked=report.accounts_checked,
                mismatch_count=len(report.mismatches) + (records.mismatch_count if records else 0),
            )
        return _run(row), report, records
