"""Rules of seller wallets. Transport-free: plain values in, DomainError out."""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncConnection

from svckit.errors import InvalidArgument
from svckit.money import Money, MoneyError, normalize_currency
from wallet_svc import repository

_SELLER_ID = re.compile(r"^[A-Za-z0-9_.\-@]{1,128}$")


@dataclass(frozen=True)
class Wallet:
    seller_id: str
    available: Money
    reserved: Money


def validate_seller_id(seller_id: str) -> str:
    if not _SELLER_ID.match(seller_id or ""):
        raise InvalidArgument(
            "INVALID_SELLER_ID", "seller_id must be 1-128 letters, digits or _.-@", field="seller_id"
        )
    return seller_id


def validate_currency(code: str) -> str:
    try:
        return normalize_currency(code)
    except MoneyError as exc:
        raise InvalidArgument(exc.reason, str(exc), field="currency") from None


class WalletService:
    async def get_wallet(self, conn: AsyncConnection, seller_id: str, currency: str) -> Wallet:
        seller_id, currency = validate_seller_id(seller_id), validate_currency(currency)
        row = await repository.get_wallet(conn, seller_id, currency)
        available, reserved = (row.available_minor, row.reserved_minor) if row else (0, 0)
        return Wallet(seller_id, Money(available, currency), Money(reserved, currency))
