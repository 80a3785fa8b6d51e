"""Every query of the wallet service; functions take the unit of work's connection.

A balance change and its movement row are one SQL statement (a data-modifying CTE): the wallet row is
updated under its row lock with the non-negativity condition in the WHERE clause, and the movement is
inserted from the updated row. No balance is ever read in one statement and written in another, so
there is nothing to race; concurrent writers queue on the wallet's row lock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from types import SimpleNamespace

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from svckit.idempotency import RECORD_MANY, ItemKey, record_many_params
from wallet_svc.domain import Reservation
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


# The movement statements are built once, with bind parameters, so each call only binds values:
# building and cache-keying these CTEs per call cost more CPU than the rest of a credit.
def _p(name: str, type_: sa.types.TypeEngine) -> sa.BindParameter:
    # Prefixed: an execution parameter named like a column of an UPDATE's table would be taken
    # by SQLAlchemy as a value to SET.
    return sa.bindparam(f"p_{name}", type_=type_)


_SELLER, _CURRENCY = _p("seller_id", sa.Text()), _p("currency", sa.Text())
_DA, _DR = _p("available_delta_minor", sa.BigInteger()), _p("reserved_delta_minor", sa.BigInteger())
_ZERO = sa.literal_column("0", sa.BigInteger)  # no bind parameter: nothing to pass at execution
_RETURNING = (wallets.c.seller_id, wallets.c.currency, wallets.c.available_minor, wallets.c.reserved_minor)


def _upsert_wallet() -> sa.CTE:
    """Only a credit may create a wallet: its deltas are non-negative, so no condition is needed."""
    stmt = (
        insert(wallets)
        .values(seller_id=_SELLER, currency=_CURRENCY, available_minor=_DA, reserved_minor=_DR)
        .on_conflict_do_update(
            index_elements=[wallets.c.seller_id, wallets.c.currency],
            set_={
                "available_minor": wallets.c.available_minor + _DA,
                "reserved_minor": wallets.c.reserved_minor + _DR,
                "updated_at": sa.func.now(),
            },
        )
        .returning(*_RETURNING)
    )
    return stmt.cte("w")


def _update_wallet() -> sa.CTE:
    """The conditional update: no row (and no change) when a balance would go negative."""
    stmt = (
        sa.update(wallets)
        .where(
            wallets.c.seller_id == _SELLER,
            wallets.c.currency == _CURRENCY,
            wallets.c.available_minor + _DA >= _ZERO,
            wallets.c.reserved_minor + _DR >= _ZERO,
        )
        .values(
            available_minor=wallets.c.available_minor + _DA,
            reserved_minor=wallets.c.reserved_minor + _DR,
            updated_at=sa.func.now(),
        )
        .returning(*_RETURNING)
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


def _movement_from(w: sa.CTE, r: sa.CTE | None) -> sa.Insert:
    """INSERT of the movement from the wallet CTE ``w`` (and the new reservation ``r``, if any)."""
    select = sa.select(
        w.c.seller_id,
        w.c.currency,
        _p("kind", sa.Text()),
        _p("amount_minor", sa.BigInteger()),
        _DA,
        _DR,
        w.c.available_minor,
        w.c.reserved_minor,
        r.c.id if r is not None else _p("reservation_id", sa.Text()),
        _p("reference_kind", sa.Text()),
        _p("reference_id", sa.Text()),
        _p("idempotency_key", sa.Text()),
    )
    # w and r are one row each (or none); the join says so instead of an implicit cross product.
    select = select.select_from(w.join(r, sa.true())) if r is not None else select.select_from(w)
    return sa.insert(wallet_movements).from_select(_MOVEMENT_COLUMNS, select).returning(*wallet_movements.c)


def _record_statement(w: sa.CTE) -> sa.Insert:
    return _movement_from(w, None).add_cte(w)


def _reserve_statement() -> sa.Select:
    w = _update_wallet()
    r = (
        sa.insert(reservations)
        .from_select(
            ["id", "seller_id", "currency", "state", "amount_minor", "reference_kind", "reference_id"],
            sa.select(
                _p("reservation_id", sa.Text()),
                w.c.seller_id,
                w.c.currency,
                sa.literal_column("'OPEN'", sa.Text),
                _p("amount_minor", sa.BigInteger()),
                _p("reference_kind", sa.Text()),
                _p("reference_id", sa.Text()),
            ),
        )
        .returning(*reservations.c)
        .cte("r")
    )
    m = _movement_from(w, r).cte("m")
    # Labelled apart: both tables have id, seller_id, amount_minor, ... columns.
    return (
        sa.select(
            *(m.c[c.name].label(f"m_{c.name}") for c in wallet_movements.c),
            *(r.c[c.name].label(f"r_{c.name}") for c in reservations.c),
        )
        .select_from(m.join(r, m.c.reservation_id == r.c.id))
        .add_cte(w)
        .add_cte(r)
        .add_cte(m)
    )


_CREDIT = _record_statement(_upsert_wallet())
_CHANGE = _record_statement(_update_wallet())
_RESERVE = _reserve_statement()


def _params(spec: MovementSpec) -> dict[str, object]:
    return {f"p_{k}": v for k, v in _values(spec).items()}


def _values(spec: MovementSpec) -> dict[str, object]:
    return {
        "seller_id": spec.seller_id,
        "currency": spec.currency,
        "kind": spec.kind,
        "amount_minor": spec.amount_minor,
        "available_delta_minor": spec.available_delta_minor,
        "reserved_delta_minor": spec.reserved_delta_minor,
        "reservation_id": spec.reservation_id,
        "reference_kind": spec.reference_kind,
        "reference_id": spec.reference_id,
        "idempotency_key": spec.idempotency_key,
    }


async def record_movement(
    conn: AsyncConnection, spec: MovementSpec, create_wallet: bool = False
) -> sa.Row | None:
    """Change the wallet and append the movement in one statement; None when a balance would go negative
    (or the wallet does not exist), in which case nothing changed. Only a credit may create the wallet."""
    stmt = _CREDIT if create_wallet else _CHANGE
    return (await conn.execute(stmt, _params(spec))).first()


async def reserve(
    conn: AsyncConnection, spec: MovementSpec
) -> tuple[SimpleNamespace, SimpleNamespace] | None:
    """Move available → reserved, open the reservation and append the movement, in one statement.

    Returns (movement, reservation), or None when available is too small (nothing changed then).
    """
    assert spec.reservation_id is not None
    row = (await conn.execute(_RESERVE, _params(spec))).first()
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


async def get_wallet(
    conn: AsyncConnection, seller_id: str, currency: str, for_update: bool = False
) -> sa.Row | None:
    stmt = sa.select(wallets).where(_wallet_key(seller_id, currency))
    if for_update:
        stmt = stmt.with_for_update()
    return (await conn.execute(stmt)).first()


async def get_wallets(conn: AsyncConnection, keys: Sequence[tuple[str, str]]) -> list[sa.Row]:
    """The wallets of those (seller_id, currency) keys that exist (any order), in one query."""
    if not keys:
        return []
    stmt = sa.select(wallets).where(sa.tuple_(wallets.c.seller_id, wallets.c.currency).in_(list(keys)))
    return list((await conn.execute(stmt)).all())


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
    conn: AsyncConnection,
    seller_id: str,
    currency: str,
    before_id: int | None,
    limit: int,
    reference_id: str = "",
) -> list[sa.Row]:
    """A wallet's movements, newest first, strictly older than ``before_id``; only those of
    ``reference_id`` when given (index ``ix_movements_wallet_reference``, so a seller's long history
    is not scanned for them).

    Within one wallet, id order is commit order: ids are drawn while the wallet's row lock is held.
    """
    stmt = (
        sa.select(wallet_movements)
        .where(wallet_movements.c.seller_id == seller_id, wallet_movements.c.currency == currency)
        .order_by(wallet_movements.c.id.desc())
        .limit(limit)
    )
    if reference_id:
        stmt = stmt.where(wallet_movements.c.reference_id == reference_id)
    if before_id is not None:
        stmt = stmt.where(wallet_movements.c.id < before_id)
    return list((await conn.execute(stmt)).all())


async def movements_made(
    conn: AsyncConnection,
    window: tuple[datetime, datetime],
    seller_id: str,
    currency: str,
    reference_id: str,
    after: tuple[datetime, int] | None,
    limit: int,
) -> list[sa.Row]:
    """Movements made in [start, end), oldest first by (created_at, id), after the keyset ``after``
    (index ``ix_movements_created_at_id``); only one wallet's, or one reference's, when given."""
    m = wallet_movements
    stmt = (
        sa.select(m)
        .where(m.c.created_at >= window[0], m.c.created_at < window[1])
        .order_by(m.c.created_at, m.c.id)
        .limit(limit)
    )
    if seller_id:
        stmt = stmt.where(m.c.seller_id == seller_id, m.c.currency == currency)
    if reference_id:
        stmt = stmt.where(m.c.reference_id == reference_id)
    if after is not None:
        stmt = stmt.where(sa.tuple_(m.c.created_at, m.c.id) > sa.tuple_(*after))
    return list((await conn.execute(stmt)).all())


# ---- batches (ApplyBatch and coalesced Credit/Debit calls) -----------------------------------------
# A batch costs three statements whatever its size: every per-item value travels as an
# array and is unnested on the server.

_LOCK_WALLETS = sa.text(
    "SELECT * FROM wallet_lock_batch(CAST(:sellers AS text[]), CAST(:currencies AS text[]),"
    " CAST(:create AS boolean[]), :ids)"
)


@dataclass(frozen=True)
class LockedWallets:
    balances: dict[tuple[str, str], tuple[int, int]]
    """(available, reserved) of each wallet that exists now, locked until commit."""
    movement_ids: list[int]
    """Ascending ids drawn under the locks, for the movements the batch will write."""
    now: datetime
    """The transaction's time: created_at of its movements, updated_at of its wallets."""


async def lock_wallets(
    conn: AsyncConnection, wallet_keys: list[tuple[str, str]], create: list[bool], ids: int
) -> LockedWallets:
    """Lock the wallets in the one fixed order (creating those flagged) and draw ``ids`` movement ids.
    See migration 0003."""
    row = (
        await conn.execute(
            _LOCK_WALLETS,
            {
                "sellers": [s for s, _ in wallet_keys],
                "currencies": [c for _, c in wallet_keys],
                "create": create,
                "ids": ids,
            },
        )
    ).one()
    balances = {
        (s, c): (a, r)
        for s, c, a, r in zip(
            row.o_seller_ids, row.o_currencies, row.o_available, row.o_reserved, strict=True
        )
    }
    return LockedWallets(balances, list(row.o_movement_ids), row.o_now)


async def reservation_wallets(
    conn: AsyncConnection, reservation_ids: list[str]
) -> dict[str, tuple[str, str]]:
    """The wallet (seller, currency) of each reservation that exists, read without a lock (a
    reservation never changes wallet), so the batch can lock wallets before reservations."""
    if not reservation_ids:
        return {}
    stmt = sa.select(reservations.c.id, reservations.c.seller_id, reservations.c.currency).where(
        reservations.c.id.in_(reservation_ids)
    )
    return {r.id: (r.seller_id, r.currency) for r in await conn.execute(stmt)}


async def lock_reservations(conn: AsyncConnection, reservation_ids: list[str]) -> list[sa.Row]:
    """Lock reservations (their wallets already locked), in id order."""
    if not reservation_ids:
        return []
    stmt = (
        sa.select(reservations)
        .where(reservations.c.id.in_(reservation_ids))
        .order_by(reservations.c.id)
        .with_for_update()
    )
    return list((await conn.execute(stmt)).all())


@dataclass(frozen=True)
class BatchMovement:
    """A movement of a batch as it will be stored, with its key's record."""

    id: int
    spec: MovementSpec
    available_after_minor: int
    reserved_after_minor: int
    key: ItemKey
    response: bytes


# The wallets' new balances, the new reservations, the settled ones, the movements and the keys'
# answers (svckit.idempotency's records) in one statement. The wallet UPDATE adds the batch's net
# deltas; each wallet's final balances equal its last movement's *_after by construction (both come
# from the same running balances under the lock), and each settled reservation gets its final parts
# and state the same way. The counts let the caller check that every locked wallet and reservation
# was updated and every row written. Reservations are inserted before the movements that name them
# in the same statement: foreign keys are checked at its end.
_WRITE_BATCH = sa.text(
    """
    WITH w AS (
      UPDATE wallets SET available_minor = wallets.available_minor + v.delta,
                         reserved_minor = wallets.reserved_minor + v.rdelta, updated_at = :now
      FROM unnest(CAST(:w_sellers AS text[]), CAST(:w_currencies AS text[]), CAST(:w_deltas AS bigint[]),
                  CAST(:w_rdeltas AS bigint[]))
           AS v(seller_id, currency, delta, rdelta)
      WHERE wallets.seller_id = v.seller_id AND wallets.currency = v.currency
      RETURNING 1
    ), r AS (
      INSERT INTO reservations (id, seller_id, currency, state, amount_minor, reference_kind, reference_id,
                                created_at, updated_at)
      SELECT r.id, r.seller_id, r.currency, 'OPEN', r.amount_minor, r.reference_kind, r.reference_id, :now, :now
      FROM unnest(CAST(:r_ids AS text[]), CAST(:r_sellers AS text[]), CAST(:r_currencies AS text[]),
                  CAST(:r_amounts AS bigint[]), CAST(:r_reference_kinds AS text[]),
                  CAST(:r_reference_ids AS text[]))
           AS r(id, seller_id, currency, amount_minor, reference_kind, reference_id)
      RETURNING 1
    ), s AS (
      UPDATE reservations SET captured_minor = v.captured, state = v.state, updated_at = :now
      FROM unnest(CAST(:s_ids AS text[]), CAST(:s_captured AS bigint[]), CAST(:s_states AS text[]))
           AS v(id, captured, state)
      WHERE reservations.id = v.id
      RETURNING 1
    ), m AS (
      INSERT INTO wallet_movements (id, seller_id, currency, kind, amount_minor, available_delta_minor,
                                    reserved_delta_minor, available_after_minor, reserved_after_minor,
                                    reservation_id, reference_kind, reference_id, idempotency_key,
                                    created_at)
      SELECT m.id, m.seller_id, m.currency, m.kind, m.amount_minor, m.delta, m.rdelta, m.available_after,
             m.reserved_after, m.reservation_id, m.reference_kind, m.reference_id, m.idempotency_key, :now
      FROM unnest(CAST(:ids AS bigint[]), CAST(:sellers AS text[]), CAST(:currencies AS text[]),
                  CAST(:kinds AS text[]), CAST(:amounts AS bigint[]), CAST(:deltas AS bigint[]),
                  CAST(:rdeltas AS bigint[]), CAST(:available_after AS bigint[]),
                  CAST(:reserved_after AS bigint[]), CAST(:reservation_ids AS text[]),
                  CAST(:reference_kinds AS text[]), CAST(:reference_ids AS text[]), CAST(:keys AS text[]))
           AS m(id, seller_id, currency, kind, amount_minor, delta, rdelta, available_after, reserved_after,
                reservation_id, reference_kind, reference_id, idempotency_key)
      RETURNING 1
    ), k AS (
      """
    + RECORD_MANY
    + """
      RETURNING 1
    )
    SELECT (SELECT count(*) FROM w) AS wallets, (SELECT count(*) FROM r) AS opened,
           (SELECT count(*) FROM s) AS settled, (SELECT count(*) FROM m) AS movements,
           (SELECT count(*) FROM k) AS keys
    """
)


async def write_batch(
    conn: AsyncConnection,
    movements: list[BatchMovement],
    wallet_deltas: dict[tuple[str, str], tuple[int, int]],
    now: datetime,
    opened: Sequence[Reservation] = (),
    settled: Sequence[Reservation] = (),
) -> bool:
    """Apply the net (available, reserved) deltas to the (locked) wallets, insert the new reservations,
    set the settled (locked) reservations' captured part and state, append the movements and store
    the keys' answers, in one statement. False if a row count is off (the caller must then roll back)."""
    specs = [m.spec for m in movements]
    params = {
        "now": now,
        "w_sellers": [s for s, _ in wallet_deltas],
        "w_currencies": [c for _, c in wallet_deltas],
        "w_deltas": [d for d, _ in wallet_deltas.values()],
        "w_rdeltas": [r for _, r in wallet_deltas.values()],
        "r_ids": [r.id for r in opened],
        "r_sellers": [r.seller_id for r in opened],
        "r_currencies": [r.amount.currency for r in opened],
        "r_amounts": [r.amount.amount_minor for r in opened],
        "r_reference_kinds": [r.reference.kind.value for r in opened],
        "r_reference_ids": [r.reference.id for r in opened],
        "s_ids": [r.id for r in settled],
        "s_captured": [r.captured.amount_minor for r in settled],
        "s_states": [r.state.value for r in settled],
        "ids": [m.id for m in movements],
        "sellers": [s.seller_id for s in specs],
        "currencies": [s.currency for s in specs],
        "kinds": [s.kind for s in specs],
        "amounts": [s.amount_minor for s in specs],
        "deltas": [s.available_delta_minor for s in specs],
        "rdeltas": [s.reserved_delta_minor for s in specs],
        "available_after": [m.available_after_minor for m in movements],
        "reserved_after": [m.reserved_after_minor for m in movements],
        "reservation_ids": [s.reservation_id for s in specs],
        "reference_kinds": [s.reference_kind for s in specs],
        "reference_ids": [s.reference_id for s in specs],
        "keys": [s.idempotency_key for s in specs],
        **record_many_params([(m.key, m.response) for m in movements]),
    }
    row = (await conn.execute(_WRITE_BATCH, params)).one()
    n = len(movements)
    return (row.wallets, row.opened, row.settled, row.movements, row.keys) == (
        len(wallet_deltas),
        len(opened),
        len(settled),
        n,
        n,
    )
