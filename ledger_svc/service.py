"""Rules of the ledger. Transport-free: takes plain values and a connection, raises DomainError."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from ledger_svc import repository
from svckit.errors import AlreadyExists, InvalidArgument, NotFound
from svckit.money import MoneyError, normalize_currency


class AccountType(enum.StrEnum):
    ASSET = "asset"
    LIABILITY = "liability"
    EQUITY = "equity"
    REVENUE = "revenue"
    EXPENSE = "expense"


_SEGMENT = re.compile(r"^[a-z0-9_.\-]{1,64}$")
_ID_SEGMENT = re.compile(r"^[A-Za-z0-9_.\-@]{1,128}$")


@dataclass(frozen=True)
class Account:
    name: str
    type: AccountType
    currency: str
    created_at: datetime


def parse_account_name(name: str) -> AccountType:
    """Validate ``type:purpose[:id]`` and return its type."""
    parts = name.split(":")
    if not 2 <= len(parts) <= 3 or not all(_SEGMENT.match(p) for p in parts[:2]):
        raise InvalidArgument(
            "INVALID_ACCOUNT_NAME",
            f"account name must look like type:purpose[:id], got {name!r}",
            field="name",
        )
    if len(parts) == 3 and not _ID_SEGMENT.match(parts[2]):
        raise InvalidArgument("INVALID_ACCOUNT_NAME", f"invalid id segment in {name!r}", field="name")
    try:
        return AccountType(parts[0])
    except ValueError:
        raise InvalidArgument(
            "INVALID_ACCOUNT_TYPE",
            f"account type must be one of {', '.join(t.value for t in AccountType)}, got {parts[0]!r}",
            field="name",
        ) from None


def _currency(code: str) -> str:
    try:
        return normalize_currency(code)
    except MoneyError as exc:
        raise InvalidArgument(exc.reason, str(exc), field="currency") from None


def _to_account(row) -> Account:
    return Account(
        name=row.name, type=AccountType(row.type), currency=row.currency, created_at=row.created_at
    )


class LedgerService:
    async def create_account(self, conn: AsyncConnection, name: str, currency: str) -> Account:
        type_ = parse_account_name(name)
        row = await repository.insert_account(conn, name, type_.value, _currency(currency))
        if row is None:
            raise AlreadyExists("ACCOUNT_ALREADY_EXISTS", f"account {name!r} already exists", {"name": name})
        return _to_account(row)

    async def get_account(self, conn: AsyncConnection, name: str) -> Account:
        row = await repository.get_account(conn, name)
        if row is None:
            raise NotFound("ACCOUNT_NOT_FOUND", f"no account named {name!r}", {"name": name})
        return _to_account(row)
