"""Every query of the payment service, as methods of :class:`PaymentRepository`. A repository is made by
a unit of work (:mod:`payment_svc.uow`) over the connection it owns and never opens one itself:
SQLAlchemy Core for transactions, and the plain psycopg connection (the pool's, or the one under the
transaction's) for the hot one-statement units of work (marked below). Rows come back typed
(:mod:`payment_svc.rows`).

One module past the usual size: the order, refund and checkout tables are updated together by most
use cases, and their queries share the row types and the hot-path statement helpers."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import psycopg
import sqlalchemy as sa
from psycopg.rows import namedtuple_row
from sqlalchemy.dialects.postgresql import ARRAY, insert
from sqlalchemy.ext.asyncio import AsyncConnection

from payment_svc import statements as sql
from payment_svc.domain import UNCERTAIN
from payment_svc.models import disputes, order_transitions, payment_events, payment_orders, refunds
from payment_svc.rows import (
    CheckoutRow,
    DisputeRow,
    DueOrder,
    OrderColumns,
    OrderRow,
    RefundRow,
    SettlementState,
    TransitionRow,
)
from svckit.db import driver_connection, one_row
from svckit.events import outbox

UNCERTAIN_STATES = tuple(sorted(state.value for state in UNCERTAIN))


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


def _settled_table(kind: str) -> sa.Table:
    return payment_orders if kind == "order" else refunds


def _settled_id(kind: str) -> sa.Column:
    return payment_orders.c.payment_order_id if kind == "order" else refunds.c.refund_id


class PaymentRepository:
    """The queries of one unit of work. ``conn`` is its SQLAlchemy connection (None for a unit of work
    on a plain driver connection); ``driver`` its psycopg connection, taken from under ``conn`` (same
    session, same transaction) when not given."""

    def __init__(self, conn: AsyncConnection | None, driver: psycopg.AsyncConnection | None = None) -> None:
        self._conn = conn
        self._driver_conn = driver

    async def _driver(self) -> psycopg.AsyncConnection:
        if self._driver_conn is None:
            self._driver_conn = await driver_connection(self.conn)
        return self._driver_conn

    @property
    def conn(self) -> AsyncConnection:
        if self._conn is None:
            # A programming error: a one-statement unit of work runs only the driver's statements.
            raise RuntimeError("this unit of work has no SQLAlchemy connection; use a transaction")
        return self._conn

    async def _fetch(self, statement: str, params: dict[str, Any]) -> list[Any]:
        cursor = (await self._driver()).cursor(row_factory=namedtuple_row)
        await cursor.execute(statement, params)
        return await cursor.fetchall()

    # -- hot one-statement queries, on the driver connection ---------------------------------

    async def insert_checkout(
        self,
        event: dict[str, Any],
        orders: Sequence[tuple[str, str, int, list[dict[str, Any]]]],
        next_check_at: datetime,
    ) -> tuple[CheckoutRow, list[OrderRow]]:
        """Store a checkout, its orders (id, seller, amount, line items) as NOT_STARTED and their first history rows
        with one statement. Returns the checkout and the orders as stored, in payment_order_id order.
        A taken checkout or order id violates its primary key and stores nothing (the unit of work
        raises the matching :class:`~payment_svc.uow.IdTaken`)."""
        params = dict(event, buyer_info=json.dumps(event["buyer_info"]), next_check_at=next_check_at)
        params.update(
            order_ids=[o[0] for o in orders],
            sellers=[o[1] for o in orders],
            amounts=[o[2] for o in orders],
            line_items=[json.dumps(o[3]) for o in orders],
        )
        rows = await self._fetch(sql.INSERT_CHECKOUT, params)
        stored = CheckoutRow.of(
            dict(event, created_at=rows[0].event_created_at, psp_session_id=None, hosted_page_url="")
        )
        return stored, [OrderRow.of(row) for row in rows]

    async def intent_orders_all_captured(self, psp_reference: str) -> bool:
        """Whether the PaymentIntent has orders and every one of them has its money captured already."""
        cursor = await (await self._driver()).execute(
            sql.INTENT_ALL_CAPTURED, {"psp_reference": psp_reference}
        )
        return bool(one_row(await cursor.fetchone(), "intent_orders_all_captured")[0])

    async def get_order_plain(self, payment_order_id: str) -> OrderRow | None:
        rows = await self._fetch(sql.ORDER_PLAIN, {"order_id": payment_order_id})
        return OrderRow.of(rows[0]) if rows else None

    async def buyer_velocity(self, buyer_id: str, since: datetime) -> tuple[int, int]:
        """(checkouts, total amount) of a buyer since a moment, for the risk check."""
        cursor = await (await self._driver()).execute(
            sql.BUYER_VELOCITY, {"buyer_id": buyer_id, "since": since}
        )
        count, total = one_row(await cursor.fetchone(), "buyer_velocity")
        return int(count), int(total)

    async def move_if(
        self,
        payment_order_id: str,
        sources: tuple[str, ...],
        cause: str,
        detail: str,
        values: dict[str, Any],
        event: outbox.EmbeddedEvent | None = None,
    ) -> OrderRow | None:
        """Set ``values`` (``state`` among them) on the order if its state is one of ``sources``, append
        the history row and write ``event`` with it, as one statement; return the moved order, or None
        if the order was not in one of those states (nothing written)."""
        columns = tuple(sorted(values))
        params = {f"set_{c}": values[c] for c in columns}
        params.update(order_id=payment_order_id, cause=cause, detail=detail[:2000])
        if event is not None:
            params.update(event.params)
        rows = await self._fetch(sql.move_if_statement(columns, sources, event is not None), params)
        return OrderRow.of(rows[0]) if rows else None

    # -- checkouts ---------------------------------------------------------------------------

    async def get_event(self, checkout_id: str) -> CheckoutRow | None:
        row = (await self.conn.execute(_EVENT, {"checkout_id": checkout_id})).first()
        return CheckoutRow.of(row) if row is not None else None

    async def update_event(self, checkout_id: str, **values: Any) -> None:
        await self.conn.execute(
            payment_events.update().where(payment_events.c.checkout_id == checkout_id).values(**values)
        )

    async def get_event_by_session(self, session_id: str) -> CheckoutRow | None:
        stmt = sa.select(payment_events).where(payment_events.c.psp_session_id == session_id)
        row = (await self.conn.execute(stmt)).first()
        return CheckoutRow.of(row) if row is not None else None

    # -- orders ------------------------------------------------------------------------------

    async def get_order(self, payment_order_id: str, for_update: bool = False) -> OrderRow | None:
        stmt = _ORDER_LOCKED if for_update else _ORDER
        row = (await self.conn.execute(stmt, {"order_id": payment_order_id})).first()
        return OrderRow.of(row) if row is not None else None

    async def orders_of_checkout(self, checkout_id: str, for_update: bool = False) -> list[OrderRow]:
        # Locked in primary-key order, the same order every writer uses, so two writers never deadlock.
        stmt = _CHECKOUT_ORDERS_LOCKED if for_update else _CHECKOUT_ORDERS
        return [OrderRow.of(r) for r in await self.conn.execute(stmt, {"checkout_id": checkout_id})]

    async def orders_of_checkouts(self, checkout_ids: Sequence[str]) -> list[OrderRow]:
        """Every order of these checkouts in one statement, by checkout then order id (reconciliation's chunks)."""
        stmt = (
            sa.select(payment_orders)
            .where(payment_orders.c.checkout_id == sa.func.any(sa.bindparam("ids", type_=ARRAY(sa.Text))))
            .order_by(payment_orders.c.checkout_id, payment_orders.c.payment_order_id)
        )
        return [OrderRow.of(r) for r in await self.conn.execute(stmt, {"ids": list(checkout_ids)})]

    async def order_columns_of_checkouts(self, checkout_ids: Sequence[str]) -> OrderColumns:
        """What reconciliation compares of every order of these checkouts, one list per field, by checkout
        then order id: tuples from the driver, no row object per order."""
        cursor = (await self._driver()).cursor()
        await cursor.execute(sql.ORDER_COLUMNS_OF_CHECKOUTS, {"ids": list(checkout_ids)})
        rows = await cursor.fetchall()
        if not rows:
            return OrderColumns()
        return OrderColumns(*(list(column) for column in zip(*rows, strict=True)))

    async def orders_by_ids(self, ids: Iterable[str], for_update: bool = False) -> list[OrderRow]:
        stmt = (
            sa.select(payment_orders)
            .where(payment_orders.c.payment_order_id.in_(sorted(set(ids))))
            .order_by(payment_orders.c.payment_order_id)
        )
        if for_update:
            stmt = stmt.with_for_update()
        return [OrderRow.of(r) for r in await self.conn.execute(stmt)]

    async def orders_by_psp_reference(self, psp_reference: str, for_update: bool = False) -> list[OrderRow]:
        stmt = _INTENT_ORDERS_LOCKED if for_update else _INTENT_ORDERS
        return [OrderRow.of(r) for r in await self.conn.execute(stmt, {"psp_reference": psp_reference})]

    async def existing_order_ids(self, ids: Iterable[str]) -> list[str]:
        stmt = sa.select(payment_orders.c.payment_order_id).where(
            payment_orders.c.payment_order_id.in_(list(ids))
        )
        return list((await self.conn.execute(stmt)).scalars())

    async def update_order(self, payment_order_id: str, **values: Any) -> None:
        values.setdefault("updated_at", sa.func.now())
        await self.conn.execute(
            payment_orders.update()
            .where(payment_orders.c.payment_order_id == payment_order_id)
            .values(**values)
        )

    async def mark_settled(self, payment_order_ids: Sequence[str]) -> None:
        """Flag orders whose wallet credit and ledger posting are done (one statement for a batch)."""
        await self.conn.execute(
            payment_orders.update()
            .where(payment_orders.c.payment_order_id.in_(sorted(payment_order_ids)))
            .values(wallet_updated=True, ledger_updated=True, updated_at=sa.func.now())
        )

    async def set_janitor_schedule(self, payment_order_id: str, **values: Any) -> None:
        """Book-keeping of the janitor; leaves ``updated_at`` alone, since the order itself did not change."""
        await self.conn.execute(
            payment_orders.update()
            .where(payment_orders.c.payment_order_id == payment_order_id)
            .values(**values)
        )

    async def move_order(
        self,
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
        await self.conn.execute(
            order_transitions.insert()
            .add_cte(moved)
            .from_select(["payment_order_id", "from_state", "to_state", "cause", "detail"], history_row)
        )

    async def add_transition(
        self,
        payment_order_id: str,
        from_state: str | None,
        to_state: str,
        cause: str,
        detail: str = "",
    ) -> None:
        await self.conn.execute(
            order_transitions.insert().values(
                payment_order_id=payment_order_id,
                from_state=from_state,
                to_state=to_state,
                cause=cause,
                detail=detail[:2000],
            )
        )

    # -- disputes ----------------------------------------------------------------------------

    async def get_dispute(self, dispute_id: str, for_update: bool = False) -> DisputeRow | None:
        stmt = sa.select(disputes).where(disputes.c.dispute_id == dispute_id)
        if for_update:
            stmt = stmt.with_for_update()
        row = (await self.conn.execute(stmt)).first()
        return DisputeRow.of(row) if row is not None else None

    async def save_dispute(self, values: dict[str, Any]) -> None:
        """Insert the dispute, or replace what its latest event says (the caller decides it may)."""
        stmt = insert(disputes).values(**values)
        changed = {k: stmt.excluded[k] for k in values if k not in ("dispute_id", "checkout_id")}
        await self.conn.execute(
            stmt.on_conflict_do_update(
                index_elements=[disputes.c.dispute_id], set_={**changed, "updated_at": sa.func.now()}
            )
        )

    async def disputes_of_checkout(self, checkout_id: str) -> list[DisputeRow]:
        stmt = (
            sa.select(disputes)
            .where(disputes.c.checkout_id == checkout_id)
            .order_by(disputes.c.created_at, disputes.c.dispute_id)
        )
        return [DisputeRow.of(r) for r in await self.conn.execute(stmt)]

    async def history(self, payment_order_id: str) -> list[TransitionRow]:
        stmt = (
            sa.select(order_transitions)
            .where(order_transitions.c.payment_order_id == payment_order_id)
            .order_by(order_transitions.c.id)
        )
        return [TransitionRow.of(r) for r in await self.conn.execute(stmt)]

    async def order_stats(
        self, since: datetime, bucket_seconds: int, captured: Sequence[str], failed: str
    ) -> tuple[list[Any], list[Any]]:
        """(bucket start, created, succeeded, failed) per bucket with orders, and (failure code, count) of
        the failed ones, of the orders created since ``since`` (the created_at index bounds the scan)."""
        o = payment_orders
        epoch = sa.func.extract("epoch", o.c.created_at)
        bucket = sa.func.to_timestamp(sa.func.floor(epoch / bucket_seconds) * bucket_seconds).label("start")
        buckets = await self.conn.execute(
            sa.select(
                bucket,
                sa.func.count().label("created"),
                sa.func.count().filter(o.c.state.in_(captured)).label("succeeded"),
                sa.func.count().filter(o.c.state == failed).label("failed"),
            )
            .where(o.c.created_at >= since)
            .group_by(bucket)
            .order_by(bucket)
        )
        code = sa.func.coalesce(o.c.failure_code, "").label("code")
        declines = await self.conn.execute(
            sa.select(code, sa.func.count().label("count"))
            .where(o.c.created_at >= since, o.c.state == failed)
            .group_by(code)
            .order_by(sa.func.count().desc(), code)
            .limit(20)
        )
        return list(buckets), list(declines)

    async def list_orders(
        self,
        *,
        checkout_id: str = "",
        seller_account: str = "",
        buyer_id: str = "",
        states: Sequence[str] = (),
        created_from: datetime | None = None,
        created_before: datetime | None = None,
        after: tuple[datetime, str] | None = None,
        limit: int,
    ) -> list[OrderRow]:
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
        return [OrderRow.of(r) for r in await self.conn.execute(stmt)]

    async def list_refunds(
        self, payment_order_id: str, after: tuple[datetime, str] | None, limit: int
    ) -> list[RefundRow]:
        """An order's refunds, newest first (created_at, then refund_id, both descending), after ``after``."""
        stmt = sa.select(refunds).where(refunds.c.payment_order_id == payment_order_id)
        if after is not None:
            stmt = stmt.where(sa.tuple_(refunds.c.created_at, refunds.c.refund_id) < sa.tuple_(*after))
        stmt = stmt.order_by(refunds.c.created_at.desc(), refunds.c.refund_id.desc()).limit(limit)
        return [RefundRow.of(r) for r in await self.conn.execute(stmt)]

    async def refunds_matching(
        self,
        *,
        window: tuple[datetime, datetime] | None,
        states: Sequence[str],
        refund_id: str,
        after: tuple[datetime, str] | None,
        limit: int,
    ) -> list[RefundRow]:
        """Every order's refunds created in ``window`` (and of ``states``, or the one ``refund_id``), newest
        first like an order's, after ``after`` (index ``ix_refunds_created_at_refund_id``)."""
        r = refunds
        stmt = sa.select(r)
        if window is not None:
            stmt = stmt.where(r.c.created_at >= window[0], r.c.created_at < window[1])
        if states:
            stmt = stmt.where(r.c.state.in_(list(states)))
        if refund_id:
            stmt = stmt.where(r.c.refund_id == refund_id)
        if after is not None:
            stmt = stmt.where(sa.tuple_(r.c.created_at, r.c.refund_id) < sa.tuple_(*after))
        stmt = stmt.order_by(r.c.created_at.desc(), r.c.refund_id.desc()).limit(limit)
        return [RefundRow.of(row) for row in await self.conn.execute(stmt)]

    async def claim_due_uncertain_orders(self, limit: int, lease_seconds: float) -> list[DueOrder]:
        """Uncertain orders whose next check is due, each moved ``lease_seconds`` ahead as it is claimed,
        so a second janitor (a replica) skips it while this one asks the PSP; the janitor then sets the
        real next check. A janitor that dies mid-pass leaves its orders due again after the lease."""
        due = (
            sa.select(payment_orders.c.payment_order_id)
            .where(
                payment_orders.c.state.in_(UNCERTAIN_STATES),
                payment_orders.c.next_check_at <= sa.func.now(),
            )
            .order_by(payment_orders.c.next_check_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        stmt = (
            payment_orders.update()
            .where(payment_orders.c.payment_order_id.in_(due.scalar_subquery()))
            .values(next_check_at=sa.func.now() + sa.func.make_interval(0, 0, 0, 0, 0, 0, lease_seconds))
            .returning(payment_orders.c.payment_order_id, payment_orders.c.checkout_id)
        )
        return [DueOrder(r.payment_order_id, r.checkout_id) for r in await self.conn.execute(stmt)]

    # -- refunds -----------------------------------------------------------------------------

    async def insert_refund(self, values: dict[str, Any]) -> None:
        await self.conn.execute(refunds.insert().values(**values))

    async def get_refund(self, refund_id: str, for_update: bool = False) -> RefundRow | None:
        stmt = sa.select(refunds).where(refunds.c.refund_id == refund_id)
        if for_update:
            stmt = stmt.with_for_update()
        row = (await self.conn.execute(stmt)).first()
        return RefundRow.of(row) if row is not None else None

    async def claim_unanswered_refunds(self, quiet_seconds: float, limit: int) -> list[RefundRow]:
        """Pending refunds the PSP never answered (no PSP id) and untouched for ``quiet_seconds``; each
        is touched as it is claimed, so the next claim waits as long again and a second janitor (a
        replica) skips it."""
        due = (
            sa.select(refunds.c.refund_id)
            .where(
                refunds.c.state == "PENDING",
                refunds.c.psp_reference.is_(None),
                refunds.c.updated_at
                <= sa.func.now() - sa.func.make_interval(0, 0, 0, 0, 0, 0, quiet_seconds),
            )
            .order_by(refunds.c.updated_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        stmt = (
            refunds.update()
            .where(refunds.c.refund_id.in_(due.scalar_subquery()))
            .values(updated_at=sa.func.now())
            .returning(*refunds.c)
        )
        return [RefundRow.of(r) for r in await self.conn.execute(stmt)]

    async def refund_by_psp_reference(self, psp_reference: str) -> RefundRow | None:
        row = (
            await self.conn.execute(sa.select(refunds).where(refunds.c.psp_reference == psp_reference))
        ).first()
        return RefundRow.of(row) if row is not None else None

    async def update_refund(self, refund_id: str, **values: Any) -> None:
        values.setdefault("updated_at", sa.func.now())
        await self.conn.execute(refunds.update().where(refunds.c.refund_id == refund_id).values(**values))

    # -- settlement --------------------------------------------------------------------------

    async def settlement_states(self, kind: str, ids: Sequence[str]) -> dict[str, SettlementState]:
        """Settlement state of each order (``kind`` "order") or refund ("refund"); absent ids are missing."""
        table, key = _settled_table(kind), _settled_id(kind)
        rows = await self.conn.execute(
            sa.select(key, table.c.settlement_attempt, table.c.settlement_undo_attempt).where(
                key.in_(sorted(ids))
            )
        )
        return {row[0]: SettlementState(row[1], row[2]) for row in rows}

    async def update_settlement(self, kind: str, id_: str, **values: Any) -> None:
        """Set settlement columns (attempt, undo attempt, and for orders the wallet/ledger flags)."""
        table, key = _settled_table(kind), _settled_id(kind)
        values.setdefault("updated_at", sa.func.now())
        await self.conn.execute(table.update().where(key == id_).values(**values))
