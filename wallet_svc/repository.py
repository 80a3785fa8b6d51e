"""Every query of the wallet service; functions take the unit of work's connection.

A balance change and its movement row are one SQL statement (a data-modifying CTE): the wallet row is
updated under its row lock with the non-negativity condition in the WHERE clause, and the movement is
inserted from the updated row. No balance is ever read in one statement and written in another, so
there is nothing to race; concurrent writers queue on the wallet's row lock.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from wallet_svc.models import reservations, wallet_movements, wallets


@dataclass(frozen=True)
class MovementSpec:
    """A movement to record: kind, signed deltas and the business facts stored with it."""

    seller_id: str
    currency: str
    kind: str
    amount_minor: int
    available_delta_minor: int
    reserved_delta_minor: int
    reference_kind: str
    reference_id: str
    idempotency_key: str
    reservation_id: str | None = None


def _wallet_key(seller_id: str, currency: str) -> sa.ColumnElement[bool]:
    return sa.and_(wallets.c.seller_id == seller_id, wallets.c.currency == currency)


def _wallet_change(spec: MovementSpec, create: bool) -> sa.CTE:
    """The wallet update as a CTE returning the new balances; empty when it would go negative."""
    returning = (wallets.c.seller_id, wallets.c.currency, wallets.c.available_minor, wallets.c.reserved_minor)
    if create:
        # Only a credit may create a wallet: both deltas are non-negative, so no condition is needed.
        stmt = (
            insert(wallets)
            .values(
                seller_id=spec.seller_id,
                currency=spec.currency,
                available_minor=spec.available_delta_minor,
                reserved_minor=spec.reserved_delta_minor,
            )
            .on_conflict_do_update(
                index_elements=[wallets.c.seller_id, wallets.c.currency],
                set_={
                    "available_minor": wallets.c.available_minor + spec.available_delta_minor,
                    "reserved_minor": wallets.c.reserved_minor + spec.reserved_delta_minor,
                    "updated_at": sa.func.now(),
                },
            )
            .returning(*returning)
        )
        return stmt.cte("w")
    stmt = (
        sa.update(wallets)
        .where(
            _wallet_key(spec.seller_id, spec.currency),
            wallets.c.available_minor + spec.available_delta_minor >= 0,
            wallets.c.reserved_minor + spec.reserved_delta_minor >= 0,
        )
        .values(
            available_minor=wallets.c.available_minor + spec.available_delta_minor,
            reserved_minor=wallets.c.reserved_minor + spec.reserved_delta_minor,
            updated_at=sa.func.now(),
        )
        .returning(*returning)
    )
    return stmt.cte("w")


_MOVEMENT_COLUMNS = [
    "seller_id",
    "currency",
    "kind",
    "amount_minor",
    "available_delta_minor",
    "reserved_delta_minor",
    "available_after_minor",
    "reserved_after_minor",
    "reservation_id",
    "reference_kind",
    "reference_id",
    "idempotency_key",
]


def _movement_from(w: sa.CTE, spec: MovementSpec, r: sa.CTE | None) -> sa.Insert:
    """INSERT of the movement from the wallet CTE ``w`` (and the new reservation ``r``, if any)."""
    select = sa.select(
        w.c.seller_id,
        w.c.currency,
        sa.literal(spec.kind, sa.Text),
        sa.literal(spec.amount_minor, sa.BigInteger),
        sa.literal(spec.available_delta_minor, sa.BigInteger),
        sa.literal(spec.reserved_delta_minor, sa.BigInteger),
        w.c.available_minor,
        w.c.reserved_minor,
        r.c.id if r is not None else sa.literal(spec.reservation_id, sa.Text),
        sa.literal(spec.reference_kind, sa.Text),
        sa.literal(spec.reference_id, sa.Text),
        sa.literal(spec.idempotency_key, sa.Text),
    )
    # w and r are one row each (or none); the join says so instead of an implicit cross product.
    select = select.select_from(w.join(r, sa.true())) if r is not None else select.select_from(w)
    return sa.insert(wallet_movements).from_select(_MOVEMENT_COLUMNS, select).returning(*wallet_movements.c)


async def record_movement(
    conn: AsyncConnection, spec: MovementSpec, create_wallet: bool = False
) -> sa.Row | None:
    """Change the wallet and append the movement in one statement; None when a balance would go negative
    (or the wallet does not exist), in which case nothing changed."""
    w = _wallet_change(spec, create_wallet)
    return (await conn.execute(_movement_from(w, spec, None).add_cte(w))).first()


async def reserve(
    conn: AsyncConnection, spec: MovementSpec
) -> tuple[SimpleNamespace, SimpleNamespace] | None:
    """Move available → reserved, open the reservation and append the movement, in one statement.

    Returns (movement, reservation), or None when available is too small (nothing changed then).
    """
    assert spec.reservation_id is not None
    w = _wallet_change(spec, create=False)
    r = (
        sa.insert(reservations)
        .from_select(
            ["id", "seller_id", "currency", "state", "amount_minor", "reference_kind", "reference_id"],
            sa.select(
                sa.literal(spec.reservation_id, sa.Text),
                w.c.seller_id,
                w.c.currency,
                sa.literal("OPEN", sa.Text),
                sa.literal(spec.amount_minor, sa.BigInteger),
                sa.literal(spec.reference_kind, sa.Text),
                sa.literal(spec.reference_id, sa.Text),
            ),
        )
        .returning(*reservations.c)
        .cte("r")
    )
    m = _movement_from(w, spec, r).cte("m")
    # Labelled apart: both tables have id, seller_id, amount_minor, ... columns.
    stmt = (
        sa.select(
            *(m.c[c.name].label(f"m_{c.name}") for c in wallet_movements.c),
            *(r.c[c.name].label(f"r_{c.name}") for c in reservations.c),
        )
        .select_from(m.join(r, m.c.reservation_id == r.c.id))
        .add_cte(w)
        .add_cte(r)
        .add_cte(m)
    )
    row = (await conn.execute(stmt)).first()
    if row is None:
        return None
    values = row._asdict()
    return (
        SimpleNamespace(**{c.name: values[f"m_{c.name}"] for c in wallet_movements.c}),
        SimpleNamespace(**{c.name: values[f"r_{c.name}"] for c in reservations.c}),
    )


async def lock_wallet_of_reservation(conn: AsyncConnection, reservation_id: str) -> sa.Row | None:
    """Lock the wallet a reservation belongs to (wallet before reservation: the one lock order)."""
    stmt = (
        sa.select(wallets)
        .join(
            reservations,
            sa.and_(
                reservations.c.seller_id == wallets.c.seller_id, reservations.c.currency == wallets.c.currency
            ),
        )
        .where(reservations.c.id == reservation_id)
        .with_for_update(of=wallets)
    )
    return (await conn.execute(stmt)).first()


async def get_reservation(
    conn: AsyncConnection, reservation_id: str, for_update: bool = False
) -> sa.Row | None:
    stmt = sa.select(reservations).where(reservations.c.id == reservation_id)
    if for_update:
        stmt = stmt.with_for_update()
    return (await conn.execute(stmt)).first()


async def settle_reservation(
    conn: AsyncConnection, reservation_id: str, released_minor: int, captured_minor: int, state: str
) -> sa.Row:
    """Add to a (locked) reservation's released/captured parts and set its next state."""
    stmt = (
        sa.update(reservations)
        .where(reservations.c.id == reservation_id)
        .values(
            released_minor=reservations.c.released_minor + released_minor,
            captured_minor=reservations.c.captured_minor + captured_minor,
            state=state,
            updated_at=sa.func.now(),
        )
        .returning(*reservations.c)
    )
    return (await conn.execute(stmt)).one()


async def get_wallet(conn: AsyncConnection, seller_id: str, currency: str) -> sa.Row | None:
    stmt = sa.select(wallets).where(_wallet_key(seller_id, currency))
    return (await conn.execute(stmt)).first()


async def list_wallets(
    conn: AsyncConnection, seller_id: str | None, after: tuple[str, str] | None, limit: int
) -> list[sa.Row]:
    """Wallets in (seller_id, currency) order, strictly after the ``after`` key."""
    stmt = sa.select(wallets).order_by(wallets.c.seller_id, wallets.c.currency).limit(limit)
    if seller_id is not None:
        stmt = stmt.where(wallets.c.seller_id == seller_id)
    if after is not None:
        stmt = stmt.where(sa.tuple_(wallets.c.seller_id, wallets.c.currency) > sa.tuple_(*after))
    return list((await conn.execute(stmt)).all())


async def list_movements(
    conn: AsyncConnection, seller_id: str, currency: str, before_id: int | None, limit: int
) -> list[sa.Row]:
    """A wallet's movements, newest first, strictly older than ``before_id``.

    Within one wallet, id order is commit order: ids are drawn while the wallet's row lock is held.
    """
    stmt = (
        sa.select(wallet_movements)
        .where(wallet_movements.c.seller_id == seller_id, wallet_movements.c.currency == currency)
        .order_by(wallet_movements.c.id.desc())
        .limit(limit)
    )
    if before_id is not None:
        stmt = stmt.where(wallet_movements.c.id < before_id)
    return list((await conn.execute(stmt)).all())
