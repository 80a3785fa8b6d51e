"""The database itself refuses what the service must never do: edit history, go negative, or let a
reservation's state disagree with its amounts. Checked with raw SQL, bypassing the service."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError, IntegrityError

from svckit.gen.wallet.v1 import wallet_service_pb2 as pb
from tests.wallet.wallet_helpers import md, money, new_key, new_seller, ref


async def _seed(stub) -> tuple[str, str]:
    seller = new_seller()
    await stub.Credit(
        pb.CreditRequest(seller_id=seller, amount=money(500), reference=ref()), metadata=md(new_key())
    )
    rsv = await stub.Reserve(
        pb.ReserveRequest(seller_id=seller, amount=money(200), reference=ref(pb.REFERENCE_KIND_PAYOUT)),
        metadata=md(new_key()),
    )
    return seller, rsv.reservation.reservation_id


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE wallet_movements SET amount_minor = amount_minor + 1 WHERE seller_id = :s",
        "UPDATE wallet_movements SET reference_id = 'forged' WHERE seller_id = :s",
        "DELETE FROM wallet_movements WHERE seller_id = :s",
        "TRUNCATE wallet_movements CASCADE",
    ],
    ids=["update-amount", "update-reference", "delete", "truncate"],
)
async def test_movements_are_append_only(stub, engine, statement):
    seller, _ = await _seed(stub)
    with pytest.raises(DBAPIError, match="append-only"):
        async with engine.begin() as conn:
            await conn.execute(sa.text(statement), {"s": seller})
    async with engine.connect() as conn:
        count = await conn.scalar(
            sa.text("SELECT count(*) FROM wallet_movements WHERE seller_id=:s"), {"s": seller}
        )
    assert count == 2


@pytest.mark.parametrize(
    ("statement", "constraint"),
    [
        ("UPDATE wallets SET available_minor = -1 WHERE seller_id = :s", "ck_wallets_available_non_negative"),
        ("UPDATE wallets SET reserved_minor = -1 WHERE seller_id = :s", "ck_wallets_reserved_non_negative"),
        (
            "INSERT INTO wallet_movements (seller_id, currency, kind, amount_minor, available_delta_minor,"
            " reserved_delta_minor, available_after_minor, reserved_after_minor, reference_kind, reference_id,"
            " idempotency_key) VALUES (:s, 'USD', 'CREDIT', 10, 20, 0, 20, 0, 'ADJUSTMENT', 'x', 'k')",
            "ck_movements_kind_deltas",
        ),
        (
            "INSERT INTO wallet_movements (seller_id, currency, kind, amount_minor, available_delta_minor,"
            " reserved_delta_minor, available_after_minor, reserved_after_minor, reference_kind, reference_id,"
            " idempotency_key) VALUES (:s, 'USD', 'DEBIT', 10, -10, 0, -10, 0, 'REFUND', 'x', 'k')",
            "ck_movements_after_non_negative",
        ),
        (
            "INSERT INTO wallet_movements (seller_id, currency, kind, amount_minor, available_delta_minor,"
            " reserved_delta_minor, available_after_minor, reserved_after_minor, reference_kind, reference_id,"
            " idempotency_key) VALUES (:s, 'USD', 'RESERVE', 10, -10, 10, 0, 10, 'PAYOUT', 'x', 'k')",
            "ck_movements_reservation_for_holds",
        ),
        (
            "UPDATE reservations SET state = 'CLOSED' WHERE seller_id = :s",
            "ck_reservations_state_matches_amounts",
        ),
        (
            "UPDATE reservations SET released_minor = 201 WHERE seller_id = :s",
            "ck_reservations_parts_within_amount",
        ),
    ],
    ids=lambda v: v if v.startswith("ck_") else "",
)
async def test_constraints_refuse_inconsistent_rows(stub, engine, statement, constraint):
    seller, _ = await _seed(stub)
    with pytest.raises(IntegrityError) as err:
        async with engine.begin() as conn:
            await conn.execute(sa.text(statement), {"s": seller})
    assert err.value.orig.diag.constraint_name == constraint


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE reservations SET released_minor = 0, state = 'OPEN' WHERE seller_id = :s",
        "UPDATE reservations SET amount_minor = 300 WHERE seller_id = :s",
        "UPDATE reservations SET reference_id = 'forged' WHERE seller_id = :s",
        "DELETE FROM reservations WHERE seller_id = :s",
        "TRUNCATE reservations CASCADE",
    ],
    ids=["back-to-open", "amount", "reference", "delete", "truncate"],
)
async def test_reservations_only_move_forward(stub, engine, statement):
    seller, rid = await _seed(stub)
    await stub.Release(
        pb.ReleaseRequest(reservation_id=rid, amount=money(50), reference=ref()), metadata=md(new_key())
    )
    with pytest.raises(DBAPIError, match=r"forward|never deleted|append-only"):
        async with engine.begin() as conn:
            await conn.execute(sa.text(statement), {"s": seller})


async def test_a_closed_reservation_cannot_be_changed_even_by_sql(stub, engine):
    _, rid = await _seed(stub)
    await stub.Release(pb.ReleaseRequest(reservation_id=rid, reference=ref()), metadata=md(new_key()))
    with pytest.raises(DBAPIError, match="may only move forward"):
        async with engine.begin() as conn:
            await conn.execute(
                sa.text("UPDATE reservations SET updated_at = now() WHERE id = :r"), {"r": rid}
            )
