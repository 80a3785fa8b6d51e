"""Every query of the payment service; functions take the unit of work's connection: SQLAlchemy's for
transactions, a plain psycopg one for the hot one-statement units of work (marked below)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from types import SimpleNamespace
from typing import Any

import psycopg
import sqlalchemy as sa
from psycopg.rows import namedtuple_row
from sqlalchemy.ext.asyncio import AsyncConnection

from payment_svc.domain import CAPTURED, UNCERTAIN
from payment_svc.models import order_transitions, payment_events, payment_orders, refunds
from svckit.db import one_row
from svckit.events import outbox

UNCERTAIN_STATES = tuple(sorted(state.value for state in UNCERTAIN))
CAPTURED_STATES = tuple(sorted(state.value for state in CAPTURED))


# The hot statements below are one-statement units of work run on plain psycopg connections
# (svckit.db.DriverPool, or the driver connection of an SQLAlchemy transaction); rows come back as
# named tuples.
_INSERT_CHECKOUT = (
    "WITH event AS ("
    " INSERT INTO payment_events (checkout_id, buyer_id, buyer_info, mode, currency, total_minor,"
    " success_url, cancel_url, payment_method, idempotency_key, fingerprint, risk_verdict, risk_rule)"
    " VALUES (%(checkout_id)s, %(buyer_id)s, CAST(%(buyer_info)s AS json), %(mode)s, %(currency)s,"
    " %(total_minor)s, %(success_url)s, %(cancel_url)s, %(payment_method)s, %(idempotency_key)s,"
    " %(fingerprint)s, %(risk_verdict)s, %(risk_rule)s)"
    " RETURNING checkout_id, currency, created_at"
    "), orders AS ("
    " INSERT INTO payment_orders"
    " (payment_order_id, checkout_id, seller_account, amount_minor, currency, state, next_check_at,"
    " line_items)"
    " SELECT o.id, e.checkout_id, o.seller, o.amount, e.currency, 'NOT_STARTED', %(next_check_at)s,"
    " CAST(o.items AS json)"
    " FROM event AS e,"
    " unnest(CAST(%(order_ids)s AS text[]), CAST(%(sellers)s AS text[]), CAST(%(amounts)s AS bigint[]),"
    " CAST(%(line_items)s AS text[]))"
    " AS o(id, seller, amount, items)"
    " RETURNING *"
    "), history AS ("
    " INSERT INTO order_transitions (payment_order_id, from_state, to_state, cause, detail)"
    " SELECT payment_order_id, NULL, state, 'created', 'checkout ' || checkout_id FROM orders"
    ") SELECT orders.*, event.created_at AS event_created_at FROM orders, event ORDER BY payment_order_id"
)


async def _fetch(conn: psycopg.AsyncConnection, statement: str, params: dict[str, Any]) -> list[Any]:
    cursor = conn.cursor(row_factory=namedtuple_row)
    await cursor.execute(statement, params)
    return await cursor.fetchall()


async def insert_checkout(
    conn: psycopg.AsyncConnection,
    event: dict[str, Any],
    orders: Sequence[tuple[str, str, int, list[dict[str, Any]]]],
    next_check_at: datetime,
) -> tuple[Any, list[Any]]:
    """Store a checkout, its orders (id, seller, amount, line items) as NOT_STARTED and their first
    history rows with one statement. Returns the event (as a plain record) and the orders as stored, in
    payment_order_id order. A taken checkout or order id raises the UniqueViolation of its primary
    key and stores nothing."""
    params = dict(event, buyer_info=json.dumps(event["buyer_info"]), next_check_at=next_check_at)
    params.update(
        order_ids=[o[0] for o in orders],
        sellers=[o[1] for o in orders],
        amounts=[o[2] for o in orders],
        line_items=[json.dumps(o[3]) for o in orders],
    )
    rows = await _fetch(conn, _INSERT_CHECKOUT, params)
    stored = SimpleNamespace(
        **event, created_at=rows[0].event_created_at, psp_session_id=None, hosted_page_url=""
    )
    return stored, rows


_INTENT_ALL_CAPTURED = (
    "SELECT count(*) > 0 AND coalesce(bool_and(state IN ("
    + ", ".join(f"'{state}'" for state in CAPTURED_STATES)
    + ")), false) FROM payment_orders WHERE psp_reference = %(psp_reference)s"
)


async def intent_orders_all_captured(conn: psycopg.AsyncConnection, psp_reference: str) -> bool:
    """Whether the PaymentIntent has orders and every one of them has its money captured already."""
    cursor = await conn.execute(_INTENT_ALL_CAPTURED, {"psp_reference": psp_reference})
    return bool(one_row(await cursor.fetchone(), "intent_orders_all_captured")[0])


_ORDER_PLAIN = "SELECT * FROM payment_orders WHERE payment_order_id = %(order_id)s"


async def get_order_plain(conn: psycopg.AsyncConnection, payment_order_id: str) -> Any | None:
    rows = await _fetch(conn, _ORDER_PLAIN, {"order_id": payment_order_id})
    return rows[0] if rows else None


_BUYER_VELOCITY = (
    "SELECT count(*), coalesce(sum(total_minor), 0) FROM payment_events"
    " WHERE buyer_id = %(buyer_id)s AND created_at >= %(since)s"
)


async def buyer_velocity(conn: psycopg.AsyncConnection, buyer_id: str, since: datetime) -> tuple[int, int]:
    """(checkouts, total amount) of a buyer since a moment, for the risk check."""
    cursor = await conn.execute(_BUYER_VELOCITY, {"buyer_id": buyer_id, "since": since})
    count, total = one_row(await cursor.fetchone(), "buyer_velocity")
    return int(count), int(total)


# Hot statements are built once: SQLAlchemy then finds their compiled form without re-deriving a
# cache key from a fresh statement tree on every call (a third of a small query's client CPU).
_EVENT = sa.select(payment_events).where(payment_events.c.checkout_id == sa.bindparam("checkout_id"))
_ORDER = sa.select(payment_orders).where(payment_orders.c.payment_order_id == sa.bindparam("order_id"))
_ORDER_LOCKED = _ORDER.with_for_update()
_CHECKOUT_ORDERS = (
    sa.select(payment_orders)
    .where(payment_orders.c.checkout_id == sa.bindparam("checkout_id"))
    .order_by(payment_orders.c.payment_order_id)
)
_CHECKOUT_ORDERS_LOCKED = _CHECKOUT_ORDERS.with_for_update()
_INTENT_ORDERS = (
    sa.select(payment_orders)
    .where(payment_orders.c.psp_reference == sa.bindparam("psp_reference"))
    .order_by(payment_orders.c.payment_order_id)
)
_INTENT_ORDERS_LOCKED = _INTENT_ORDERS.with_for_update()


async def get_event(conn: AsyncConnection, checkout_id: str) -> sa.Row | None:
    return (await conn.execute(_EVENT, {"checkout_id": checkout_id})).first()


async def update_event(conn: AsyncConnection, checkout_id: str, **values: Any) -> None:
    await conn.execute(
        payment_events.update().where(payment_events.c.checkout_id == checkout_id).values(**values)
    )


async def get_event_by_session(conn: AsyncConnection, session_id: str) -> sa.Row | None:
    stmt = sa.select(payment_events).where(payment_events.c.psp_session_id == session_id)
    return (await conn.execute(stmt)).first()


async def get_order(conn: AsyncConnection, payment_order_id: str, for_update: bool = False) -> sa.Row | None:
    stmt = _ORDER_LOCKED if for_update else _ORDER
    return (await conn.execute(stmt, {"order_id": payment_order_id})).first()


async def orders_of_checkout(
    conn: AsyncConnection, checkout_id: str, for_update: bool = False
) -> list[sa.Row]:
    # Locked in primary-key order, the same order every writer uses, so two writers never deadlock.
    stmt = _CHECKOUT_ORDERS_LOCKED if for_update else _CHECKOUT_ORDERS
    return list((await conn.execute(stmt, {"checkout_id": checkout_id})).all())


async def orders_by_ids(conn: AsyncConnection, ids: Iterable[str], for_update: bool = False) -> list[sa.Row]:
    stmt = (
        sa.select(payment_orders)
        .where(payment_orders.c.payment_order_id.in_(sorted(set(ids))))
        .order_by(payment_orders.c.payment_order_id)
    )
    if for_update:
        stmt = stmt.with_for_update()
    return list((await conn.execute(stmt)).all())


async def orders_by_psp_reference(
    conn: AsyncConnection, psp_reference: str, for_update: bool = False
) -> list[sa.Row]:
    stmt = _INTENT_ORDERS_LOCKED if for_update else _INTENT_ORDERS
    return list((await conn.execute(stmt, {"psp_reference": psp_reference})).all())


async def existing_order_ids(conn: AsyncConnection, ids: Iterable[str]) -> list[str]:
    stmt = sa.select(payment_orders.c.payment_order_id).where(
        payment_orders.c.payment_order_id.in_(list(ids))
    )
    return list((await conn.execute(stmt)).scalars())


async def update_order(conn: AsyncConnection, payment_order_id: str, **values: Any) -> None:
    values.setdefault("updated_at", sa.func.now())
    await conn.execute(
        payment_orders.update().where(payment_orders.c.payment_order_id == payment_order_id).values(**values)
    )


async def mark_settled(conn: AsyncConnection, payment_order_ids: Sequence[str]) -> None:
    """Flag orders whose wallet credit and ledger posting are done (one statement for a batch)."""
    await conn.execute(
        payment_orders.update()
        .where(payment_orders.c.payment_order_id.in_(sorted(payment_order_ids)))
        .values(wallet_updated=True, ledger_updated=True, updated_at=sa.func.now())
    )


async def set_janitor_schedule(conn: AsyncConnection, payment_order_id: str, **values: Any) -> None:
    """Book-keeping of the janitor; leaves ``updated_at`` alone, since the order itself did not change."""
    await conn.execute(
        payment_orders.update().where(payment_orders.c.payment_order_id == payment_order_id).values(**values)
    )


async def move_order(
    conn: AsyncConnection,
    payment_order_id: str,
    from_state: str,
    to_state: str,
    cause: str,
    detail: str,
    **values: Any,
) -> None:
    """Update an order (locked by the caller) and append its history row, in one statement."""
    values.setdefault("updated_at", sa.func.now())
    moved = (
        payment_orders.update()
        .where(payment_orders.c.payment_order_id == payment_order_id)
        .values(**values)
        .returning(payment_orders.c.payment_order_id)
        .cte("moved")
    )
    history_row = sa.select(
        moved.c.payment_order_id,
        sa.literal(from_state, sa.Text),
        sa.literal(to_state, sa.Text),
        sa.literal(cause, sa.Text),
        sa.literal(detail[:2000], sa.Text),
    )
    await conn.execute(
        order_transitions.insert()
        .add_cte(moved)
        .from_select(["payment_order_id", "from_state", "to_state", "cause", "detail"], history_row)
    )


_MOVE_IF: dict[tuple[tuple[str, ...], tuple[str, ...], bool], str] = {}


def _move_if_statement(columns: tuple[str, ...], sources: tuple[str, ...], with_event: bool) -> str:
    """Built once per shape. The locking read gives the state the row had when it was moved (for the
    history row); the update applies only if that state may move to the target. The source states
    come from the code's transition table, never from input, so they are written into the SQL (an
    array parameter costs more to send than the whole rest of the statement)."""
    key = (columns, sources, with_event)
    statement = _MOVE_IF.get(key)
    if statement is None:
        if not all(name.isidentifier() for name in (*sources, *columns)):
            raise ValueError(f"not state or column names: {sources!r}, {columns!r}")
        allowed = ", ".join(f"'{state}'" for state in sources) or "NULL"
        assignments = ", ".join(f"{c} = %(set_{c})s" for c in columns)
        event = f", event AS ({outbox.EmbeddedEvent.sql('moved')})" if with_event else ""
        statement = (
            "WITH prev AS ("
            " SELECT payment_order_id, state FROM payment_orders"
            " WHERE payment_order_id = %(order_id)s FOR UPDATE"
            "), moved AS ("
            f" UPDATE payment_orders AS o SET {assignments}, updated_at = now() FROM prev"
            f" WHERE o.payment_order_id = prev.payment_order_id AND prev.state IN ({allowed})"
            " RETURNING o.*, prev.state AS from_state"
            "), history AS ("
            " INSERT INTO order_transitions (payment_order_id, from_state, to_state, cause, detail)"
            " SELECT payment_order_id, from_state, state, %(cause)s, %(detail)s FROM moved"
            f"){event} SELECT * FROM moved"
        )
        _MOVE_IF[key] = statement
    return statement


async def move_if(
    conn: psycopg.AsyncConnection,
    payment_order_id: str,
    sources: tuple[str, ...],
    cause: str,
    detail: str,
    values: dict[str, Any],
    event: outbox.EmbeddedEvent | None = None,
) -> Any | None:
    """Set ``values`` (``state`` among them) on the order if its state is one of ``sources``, append the
    history row and write ``event`` with it, as one statement; return the moved row (with
    ``from_state``), or None if the order was not in one of those states (nothing written)."""
    columns = tuple(sorted(values))
    params = {f"set_{c}": values[c] for c in columns}
    params.update(order_id=payment_order_id, cause=cause, detail=detail[:2000])
    if event is not None:
        params.update(event.params)
    rows = await _fetch(conn, _move_if_statement(columns, sources, event is not None), params)
    return rows[0] if rows else None


async def add_transitions(conn: AsyncConnection, rows: Sequence[dict[str, Any]]) -> None:
    """Several history rows in one statement (keys: payment_order_id, from_state, to_state, cause, detail)."""
    await conn.execute(order_transitions.insert().values([dict(r, detail=r["detail"][:2000]) for r in rows]))


async def add_transition(
    conn: AsyncConnection,
    payment_order_id: str,
    from_state: str | None,
    to_state: str,
    cause: str,
    detail: str = "",
) -> None:
    await conn.execute(
        order_transitions.insert().values(
            payment_order_id=payment_order_id,
            from_state=from_state,
            to_state=to_state,
            cause=cause,
            detail=detail[:2000],
        )
    )


async def history(conn: AsyncConnection, payment_order_id: str) -> list[sa.Row]:
    stmt = (
        sa.select(order_transitions)
        .where(order_transitions.c.payment_order_id == payment_order_id)
        .order_by(order_transitions.c.id)
    )
    return list((await conn.execute(stmt)).all())


async def list_orders(
    conn: AsyncConnection,
    *,
    checkout_id: str = "",
    seller_account: str = "",
    buyer_id: str = "",
    states: Sequence[str] = (),
    created_from: datetime | None = None,
    created_before: datetime | None = None,
    after: tuple[datetime, str] | None = None,
    limit: int,
) -> list[sa.Row]:
    """Orders matching every filter given, newest first (created_at, then payment_order_id, both
    descending), starting after the keyset position ``after``; at most ``limit``."""
    o = payment_orders
    source: sa.FromClause = o
    conditions: list[sa.ColumnElement[bool]] = []
    if checkout_id:
        conditions.append(o.c.checkout_id == checkout_id)
    if seller_account:
        conditions.append(o.c.seller_account == seller_account)
    if buyer_id:
        # The buyer is the checkout's: its orders through the (buyer_id, created_at) index of the events.
        source = o.join(payment_events, payment_events.c.checkout_id == o.c.checkout_id)
        conditions.append(payment_events.c.buyer_id == buyer_id)
    if states:
        conditions.append(o.c.state.in_(list(states)))
    if created_from is not None:
        conditions.append(o.c.created_at >= created_from)
    if created_before is not None:
        conditions.append(o.c.created_at < created_before)
    if after is not None:
        conditions.append(sa.tuple_(o.c.created_at, o.c.payment_order_id) < sa.tuple_(*after))
    stmt = (
        sa.select(o)
        .select_from(source)
        .where(*conditions)
        .order_by(o.c.created_at.desc(), o.c.payment_order_id.desc())
        .limit(limit)
    )
    return list((await conn.execute(stmt)).all())


async def list_refunds(
    conn: AsyncConnection, payment_order_id: str, after: tuple[datetime, str] | None, limit: int
) -> list[sa.Row]:
    """An order's refunds, newest first (created_at, then refund_id, both descending), after ``after``."""
    stmt = sa.select(refunds).where(refunds.c.payment_order_id == payment_order_id)
    if after is not None:
        stmt = stmt.where(sa.tuple_(refunds.c.created_at, refunds.c.refund_id) < sa.tuple_(*after))
    stmt = stmt.order_by(refunds.c.created_at.desc(), refunds.c.refund_id.desc()).limit(limit)
    return list((await conn.execute(stmt)).all())


async def due_uncertain_orders(conn: AsyncConnection, limit: int) -> list[sa.Row]:
    stmt = (
        sa.select(payment_orders.c.payment_order_id, payment_orders.c.checkout_id)
        .where(
            payment_orders.c.state.in_(UNCERTAIN_STATES),
            payment_orders.c.next_check_at <= sa.func.now(),
        )
        .order_by(payment_orders.c.next_check_at)
        .limit(limit)
    )
    return list((await conn.execute(stmt)).all())


async def insert_refund(conn: AsyncConnection, values: dict[str, Any]) -> None:
    await conn.execute(refunds.insert().values(**values))


async def get_refund(conn: AsyncConnection, refund_id: str, for_update: bool = False) -> sa.Row | None:
    stmt = sa.select(refunds).where(refunds.c.refund_id == refund_id)
    if for_update:
        stmt = stmt.with_for_update()
    return (await conn.execute(stmt)).first()


async def refund_by_psp_reference(conn: AsyncConnection, psp_reference: str) -> sa.Row | None:
    return (await conn.execute(sa.select(refunds).where(refunds.c.psp_reference == psp_reference))).first()


async def update_refund(conn: AsyncConnection, refund_id: str, **values: Any) -> None:
    values.setdefault("updated_at", sa.func.now())
    await conn.execute(refunds.update().where(refunds.c.refund_id == refund_id).values(**values))


def _settled_table(kind: str) -> sa.Table:
    return payment_orders if kind == "order" else refunds


def _settled_id(kind: str) -> sa.Column:
    return payment_orders.c.payment_order_id if kind == "order" else refunds.c.refund_id


async def settlement_states(
    conn: AsyncConnection, kind: str, ids: Sequence[str]
) -> dict[str, tuple[int, int | None]]:
    """(attempt, undo attempt) of each order (``kind`` "order") or refund ("refund"); absent ids are missing."""
    table, key = _settled_table(kind), _settled_id(kind)
    rows = await conn.execute(
        sa.select(key, table.c.settlement_attempt, table.c.settlement_undo_attempt).where(
            key.in_(sorted(ids))
        )
    )
    return {row[0]: (row[1], row[2]) for row in rows}


async def update_settlement(conn: AsyncConnection, kind: str, id_: str, **values: Any) -> None:
    """Set settlement columns (attempt, undo attempt, and for orders the wallet/ledger flags)."""
    table, key = _settled_table(kind), _settled_id(kind)
    values.setdefault("updated_at", sa.func.now())
    await conn.execute(table.update().where(key == id_).values(**values))
