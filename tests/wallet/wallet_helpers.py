"""Helpers for wallet tests: calls with keys, and the invariant check every test can run
(stored balances = sum of movements, and the chain of resulting balances is unbroken)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import grpc
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from svckit.gen.common.v1 import money_pb2
from svckit.gen.wallet.v1 import wallet_service_pb2 as pb


def new_seller() -> str:
    return f"seller_{uuid.uuid4().hex[:12]}"


def new_key() -> str:
    return uuid.uuid4().hex


def md(key: str) -> list[tuple[str, str]]:
    return [("idempotency-key", key), ("x-request-id", f"req_{key}")]


def money(amount_minor: int, currency: str = "USD") -> money_pb2.Money:
    return money_pb2.Money(amount_minor=amount_minor, currency=currency)


def ref(kind: pb.ReferenceKind = pb.REFERENCE_KIND_PAYMENT_ORDER, id_: str | None = None) -> pb.Reference:
    return pb.Reference(kind=kind, id=id_ or f"ref_{uuid.uuid4().hex[:10]}")


@dataclass(frozen=True)
class Books:
    """A wallet as stored, next to what its movements add up to."""

    available: int
    reserved: int
    movements_available: int
    movements_reserved: int
    movement_count: int
    idempotency_keys: int


async def books(engine: AsyncEngine, seller_id: str, currency: str = "USD") -> Books:
    async with engine.connect() as conn:
        wallet = (
            await conn.execute(
                sa.text(
                    "SELECT available_minor, reserved_minor FROM wallets WHERE seller_id=:s AND currency=:c"
                ),
                {"s": seller_id, "c": currency},
            )
        ).first()
        sums = (
            await conn.execute(
                sa.text(
                    "SELECT coalesce(sum(available_delta_minor),0), coalesce(sum(reserved_delta_minor),0),"
                    " count(*) FROM wallet_movements WHERE seller_id=:s AND currency=:c"
                ),
                {"s": seller_id, "c": currency},
            )
        ).one()
        keys = await conn.scalar(
            sa.text(
                "SELECT count(*) FROM idempotency_keys WHERE key IN"
                " (SELECT idempotency_key FROM wallet_movements WHERE seller_id=:s)"
            ),
            {"s": seller_id},
        )
    available, reserved = (wallet.available_minor, wallet.reserved_minor) if wallet else (0, 0)
    return Books(available, reserved, int(sums[0]), int(sums[1]), sums[2], keys)


async def assert_books_balance(engine: AsyncEngine, seller_id: str, currency: str = "USD") -> Books:
    """Stored balances equal the sum of movements, and each movement's resulting balances follow from
    the previous one's by its deltas (no change ever bypassed the movement log)."""
    b = await books(engine, seller_id, currency)
    assert (b.available, b.reserved) == (b.movements_available, b.movements_reserved)
    assert b.available >= 0 and b.reserved >= 0
    async with engine.connect() as conn:
        broken = await conn.scalar(
            sa.text(
                """
                SELECT count(*) FROM (
                  SELECT available_after_minor, reserved_after_minor, available_delta_minor, reserved_delta_minor,
                         lag(available_after_minor, 1, 0::bigint) OVER w AS prev_a,
                         lag(reserved_after_minor, 1, 0::bigint) OVER w AS prev_r
                  FROM wallet_movements WHERE seller_id=:s AND currency=:c
                  WINDOW w AS (ORDER BY id)
                ) chain
                WHERE available_after_minor <> prev_a + available_delta_minor
                   OR reserved_after_minor <> prev_r + reserved_delta_minor
                   OR available_after_minor < 0 OR reserved_after_minor < 0
                """
            ),
            {"s": seller_id, "c": currency},
        )
    assert broken == 0, f"{broken} movements do not follow from their predecessor"
    return b


async def call_error(coro) -> grpc.aio.AioRpcError:
    try:
        await coro
    except grpc.aio.AioRpcError as exc:
        return exc
    raise AssertionError("the call succeeded but was expected to be refused")
