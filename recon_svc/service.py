"""Rules of reconciliation. Transport-free: plain values in, DomainError out."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from recon_svc import repository
from recon_svc.books import LedgerReader, WalletReader
from svckit import pagination

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100


class RunState(enum.StrEnum):
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"


@dataclass(frozen=True)
class Run:
    run_id: str
    state: RunState
    interval_start: datetime
    interval_end: datetime
    created_at: datetime


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


class ReconService:
    async def list_runs(
        self, conn: AsyncConnection, page_size: int, page_token: str
    ) -> tuple[list[Run], str]:
        size = pagination.page_size(page_size, default=DEFAULT_PAGE_SIZE, maximum=MAX_PAGE_SIZE)
        rows = await repository.list_runs(conn, size + 1, pagination.decode_token(page_token, ["runs"], int))
        page, more = rows[:size], len(rows) > size
        runs = [
            Run(r.run_id, RunState(r.state), r.interval_start, r.interval_end, r.created_at) for r in page
        ]
        return runs, pagination.encode_token(["runs"], page[-1].id) if more else ""
