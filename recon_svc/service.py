"""Rules of reconciliation. Transport-free: plain values in, DomainError out."""

from __future__ import annotations

import base64
import enum
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from recon_svc import repository
from recon_svc.books import LedgerReader, WalletReader
from svckit.errors import InvalidArgument

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


def encode_token(last_id: int) -> str:
    return base64.urlsafe_b64encode(f"v1:{last_id}".encode()).decode()


def decode_token(token: str) -> int | None:
    if not token:
        return None
    try:
        version, value = base64.urlsafe_b64decode(token.encode()).decode().split(":", 1)
        if version != "v1":
            raise ValueError(version)
        return int(value)
    except (ValueError, UnicodeDecodeError):
        raise InvalidArgument(
            "INVALID_PAGE_TOKEN", "page_token is not one this service issued", field="page_token"
        ) from None


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
    """Every seller's wallet (available + reserved) must equal the ledger's seller_payable account.

    One account per seller holds one currency; a wallet in another currency has no account to match.
    """
    by_seller: dict[str, list] = {}
    wallets_checked = 0
    async for w in wallets.wallets(seller_id):
        wallets_checked += 1
        by_seller.setdefault(w.seller_id, []).append(w)
    accounts = {}
    async for a in ledger.seller_payables(seller_id):
        accounts[a.seller_id] = a
    mismatches: list[Mismatch] = []
    for seller, seller_wallets in sorted(by_seller.items()):
        account = accounts.get(seller)
        for w in seller_wallets:
            if account is None:
                if w.total_minor:
                    mismatches.append(
                        Mismatch(seller, w.currency, MismatchKind.ACCOUNT_MISSING, w.total_minor, 0)
                    )
            elif account.currency != w.currency:
                if w.total_minor:
                    mismatches.append(
                        Mismatch(seller, w.currency, MismatchKind.CURRENCY_DIFFERS, w.total_minor, 0)
                    )
            elif account.balance_minor != w.total_minor:
                mismatches.append(
                    Mismatch(
                        seller, w.currency, MismatchKind.AMOUNT_DIFFERS, w.total_minor, account.balance_minor
                    )
                )
    for seller, account in sorted(accounts.items()):
        has_wallet = any(w.currency == account.currency for w in by_seller.get(seller, []))
        if not has_wallet and account.balance_minor:
            mismatches.append(
                Mismatch(seller, account.currency, MismatchKind.WALLET_MISSING, 0, account.balance_minor)
            )
    return WalletLedgerReport(wallets_checked, len(accounts), mismatches)


class ReconService:
    async def list_runs(
        self, conn: AsyncConnection, page_size: int, page_token: str
    ) -> tuple[list[Run], str]:
        if page_size < 0 or page_size > MAX_PAGE_SIZE:
            raise InvalidArgument(
                "INVALID_PAGE_SIZE", f"page_size must be 0-{MAX_PAGE_SIZE}", field="page_size"
            )
        size = page_size or DEFAULT_PAGE_SIZE
        rows = await repository.list_runs(conn, size + 1, decode_token(page_token))
        page, more = rows[:size], len(rows) > size
        runs = [
            Run(r.run_id, RunState(r.state), r.interval_start, r.interval_end, r.created_at) for r in page
        ]
        return runs, encode_token(page[-1].id) if more else ""
