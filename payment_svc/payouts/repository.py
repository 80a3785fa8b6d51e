"""Every query of pay-outs. ``PayoutStore`` hands out units of work (``async with store.unit() as repo``)
whose ``PayoutRepo`` holds the queries (the sellers' and runs' ones in :mod:`.sellers_runs`); rows come
back as the typed rows of :mod:`.domain`.

The store is the seam a service-wide unit of work replaces: nothing else in this package touches the
database. A little past the usual size: the pay-outs' batched statements (a chunk of sellers at a time)
sit next to the single ones they must agree with.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from payment_svc.payouts.domain import (
    InboxFact,
    PayoutRow,
    PayoutState,
    RunItem,
    SellerRow,
    TransitionRow,
    can_move,
)
from payment_svc.payouts.inbox_queries import RECORD_FACT, InboxQueries, record_params
from payment_svc.payouts.sellers_runs import SellerRunQueries
from svckit.db import DriverPool
from svckit.events import outbox
from svckit.redaction import redact

_T = sa.text


def _payout(r: Any) -> PayoutRow:
    return PayoutRow(
        payout_id=r.payout_id,
        run_id=r.run_id,
        seller_account=r.seller_account,
        period=r.period,
        amount_minor=r.amount_minor,
        currency=r.currency,
        psp_account=r.psp_account,
        state=PayoutState(r.state),
        reservation_id=r.reservation_id,
        ledger_tx_id=r.ledger_tx_id,
        psp_transfer_id=r.psp_transfer_id,
        psp_payout_id=r.psp_payout_id,
        paid_tx_id=r.paid_tx_id,
        failure_code=r.failure_code,
        failure_message=r.failure_message,
        last_error=r.last_error,
        attempts=r.attempts,
        alerted_at=r.alerted_at,
        created_at=r.created_at,
        updated_at=r.updated_at,
        debt_netted_minor=r.debt_netted_minor,
        net_tx_id=r.net_tx_id,
    )


PAYOUT_STATE_CHANGED = "payout.state_changed"
"""The backbone event of every pay-out state change (its creation included)."""


class PayoutRepo(SellerRunQueries, InboxQueries):
    """The queries of one unit of work (one transaction on ``conn``)."""

    def __init__(self, conn: AsyncConnection, events_stream: str) -> None:
        self.conn = conn
        self._stream = events_stream

    async def payout_changed(self, p: PayoutRow, from_state: PayoutState | None, cause: str) -> None:
        """The state change as an event in the outbox, committed with it (the relay publishes it)."""
        await outbox.add(
            self.conn,
            stream=self._stream,
            aggregate_id=p.payout_id,
            type=PAYOUT_STATE_CHANGED,
            payload=_changed_payload(p, from_state, cause),
        )

    async def payouts_changed(
        self,
        rows: Sequence[PayoutRow],
        from_state: PayoutState | None,
        cause: str,
        detail: Callable[[PayoutRow], str] | None = None,
    ) -> None:
        """:meth:`payout_changed` for many pay-outs, with their transitions, in two statements."""
        if not rows:
            return
        await self.conn.execute(
            _T(
                "INSERT INTO payout_transitions (payout_id, from_state, to_state, cause, detail)"
                " SELECT p, :f, t, :c, d FROM unnest(CAST(:ids AS text[]), CAST(:tos AS text[]),"
                " CAST(:details AS text[])) AS x(p, t, d)"
            ),
            {
                "ids": [p.payout_id for p in rows],
                "tos": [p.state.value for p in rows],
                "details": [redact(detail(p))[:1000] if detail else "" for p in rows],
                "f": from_state.value if from_state else None,
                "c": cause,
            },
        )
        await outbox.add_many(
            self.conn,
            stream=self._stream,
            events=[
                outbox.NewEvent(p.payout_id, PAYOUT_STATE_CHANGED, _changed_payload(p, from_state, cause))
                for p in rows
            ],
        )

    # -- payouts -------------------------------------------------------------------------------

    async def create_payout(
        self,
        payout_id: str,
        run_id: str,
        seller: SellerRow,
        period: str,
        amount_minor: int,
        debt_netted_minor: int = 0,
    ) -> PayoutRow | None:
        """The new pay-out, or None when the seller already has one for the period (exactly once)."""
        row = await self._one(
            "INSERT INTO payouts (payout_id, run_id, seller_account, period, amount_minor, currency,"
            " psp_account, state, next_check_at, debt_netted_minor) VALUES (:id, :run, :s, :period,"
            " :amount, :currency, :acct, 'CREATED', now(), :debt)"
            " ON CONFLICT (seller_account, period) DO NOTHING RETURNING *",
            debt=debt_netted_minor,
            id=payout_id,
            run=run_id,
            s=seller.seller_account,
            period=period,
            amount=amount_minor,
            currency=seller.payout_currency,
            acct=seller.psp_account,
        )
        if row is None:
            return None
        await self.add_transition(payout_id, None, PayoutState.CREATED, f"run {run_id}", "")
        payout = _payout(row)
        await self.payout_changed(payout, None, f"run {run_id}")
        return payout

    async def create_payouts(
        self,
        run_id: str,
        period: str,
        planned: Sequence[tuple[str, SellerRow, int, int]],
        lease_seconds: float,
    ) -> list[PayoutRow]:
        """:meth:`create_payout` for many (payout id, seller, amount, debt) in three statements, each
        new pay-out claimed by the caller for ``lease_seconds``; a seller who already has a pay-out of
        the period gets none (not in the answer)."""
        if not planned:
            return []
        rows = await self._all(
            "INSERT INTO payouts (payout_id, run_id, seller_account, period, amount_minor, currency,"
            " psp_account, state, next_check_at, debt_netted_minor, claimed_until)"
            " SELECT id, :run, s, :period, amount, cur, acct, 'CREATED', now(), debt,"
            " now() + make_interval(secs => :lease)"
            " FROM unnest(CAST(:ids AS text[]), CAST(:sellers AS text[]), CAST(:amounts AS bigint[]),"
            " CAST(:curs AS text[]), CAST(:accts AS text[]), CAST(:debts AS bigint[]))"
            " AS x(id, s, amount, cur, acct, debt)"
            " ON CONFLICT (seller_account, period) DO NOTHING RETURNING *",
            run=run_id,
            period=period,
            lease=lease_seconds,
            ids=[p[0] for p in planned],
            sellers=[p[1].seller_account for p in planned],
            amounts=[p[2] for p in planned],
            curs=[p[1].payout_currency for p in planned],
            accts=[p[1].psp_account for p in planned],
            debts=[p[3] for p in planned],
        )
        created = [_payout(r) for r in rows]
        await self.payouts_changed(created, None, f"run {run_id}")
        return created

    async def add_run_items(self, run_id: str, items: Sequence[RunItem]) -> None:
        """:meth:`add_run_item` for many, in two statements."""
        if not items:
            return
        rows = await self._all(
            "INSERT INTO payout_run_items (run_id, seller_account, amount_minor, currency, payout_id,"
            " skip_reason, detail, available_minor, reserve_held_minor)"
            " SELECT :r, s, amount, cur, pid, reason, detail, available, held"
            " FROM unnest(CAST(:sellers AS text[]), CAST(:amounts AS bigint[]), CAST(:curs AS text[]),"
            " CAST(:pids AS text[]), CAST(:reasons AS text[]), CAST(:details AS text[]),"
            " CAST(:availables AS bigint[]), CAST(:helds AS bigint[]))"
            " AS x(s, amount, cur, pid, reason, detail, available, held)"
            " ON CONFLICT DO NOTHING RETURNING skip_reason",
            r=run_id,
            sellers=[i.seller_account for i in items],
            amounts=[i.amount_minor for i in items],
            curs=[i.currency for i in items],
            pids=[i.payout_id for i in items],
            reasons=[i.skip_reason.value if i.skip_reason else "" for i in items],
            details=[i.detail for i in items],
            availables=[i.available_minor for i in items],
            helds=[i.reserve_held_minor for i in items],
        )
        created = sum(1 for r in rows if not r.skip_reason)
        await self.conn.execute(
            _T(
                "UPDATE payout_runs SET sellers_done = sellers_done + :done,"
                " payouts_created = payouts_created + :created, sellers_skipped = sellers_skipped + :skipped"
                " WHERE run_id = :r"
            ),
            {"r": run_id, "done": len(rows), "created": created, "skipped": len(rows) - created},
        )

    async def payouts_of_period(self, sellers: Sequence[str], period: str) -> dict[str, PayoutRow]:
        rows = await self._all(
            "SELECT * FROM payouts WHERE seller_account = ANY(CAST(:s AS text[])) AND period = :p",
            s=list(sellers),
            p=period,
        )
        return {r.seller_account: _payout(r) for r in rows}

    async def advance_many(
        self,
        from_state: PayoutState,
        to_state: PayoutState,
        cause: str,
        columns: dict[str, tuple[str, list[Any]]],
        also: str = "",
        detail: Callable[[PayoutRow], str] | None = None,
        **params: Any,
    ) -> list[PayoutRow]:
        """Move many pay-outs from ``from_state`` to ``to_state`` in one statement, setting each one's
        ``columns`` (name -> (SQL type, one value per pay-out; ``payout_id`` first)) and ``also`` (SQL
        assignments the same for all); a pay-out no longer in ``from_state`` (an event got there
        first) is left alone. Writes the transitions and events; the pay-outs moved."""
        if not can_move(from_state, to_state):
            raise ValueError(f"{from_state} -> {to_state} is not a transition")
        names = list(columns)
        if not columns["payout_id"][1]:
            return []
        unnest = ", ".join(f"CAST(:c_{n} AS {columns[n][0]}[])" for n in names)
        sets = ", ".join(f"{n} = x.{n}" for n in names if n != "payout_id")
        rows = await self._all(
            f"UPDATE payouts p SET state = :to, {sets}{also}, updated_at = now()"
            f" FROM unnest({unnest}) AS x({', '.join(names)})"
            " WHERE p.payout_id = x.payout_id AND p.state = :from RETURNING p.*",
            to=to_state.value,
            **{"from": from_state.value},
            **{f"c_{n}": columns[n][1] for n in names},
            **params,
        )
        moved = [_payout(r) for r in rows]
        await self.payouts_changed(moved, from_state, cause, detail)
        return moved

    async def release_claims(self, payout_ids: Sequence[str]) -> None:
        await self.conn.execute(
            _T("UPDATE payouts SET claimed_until = NULL WHERE payout_id = ANY(CAST(:p AS text[]))"),
            {"p": list(payout_ids)},
        )

    async def payout_of_period(self, seller_account: str, period: str) -> PayoutRow | None:
        row = await self._one(
            "SELECT * FROM payouts WHERE seller_account = :s AND period = :p", s=seller_account, p=period
        )
        return _payout(row) if row else None

    async def get_payout(self, payout_id: str, for_update: bool = False) -> PayoutRow | None:
        lock = " FOR UPDATE" if for_update else ""
        row = await self._one(f"SELECT * FROM payouts WHERE payout_id = :p{lock}", p=payout_id)
        return _payout(row) if row else None

    async def payout_by_psp_id(self, psp_payout_id: str, for_update: bool = False) -> PayoutRow | None:
        lock = " FOR UPDATE" if for_update else ""
        row = await self._one(f"SELECT * FROM payouts WHERE psp_payout_id = :p{lock}", p=psp_payout_id)
        return _payout(row) if row else None

    async def payouts_for_facts(
        self, psp_payout_ids: Sequence[str], payout_ids: Sequence[str]
    ) -> list[PayoutRow]:
        """The pay-outs inbox facts name, by the PSP's payout id or by our id, locked in id order (two
        workers' groups never wait on each other in opposite orders)."""
        rows = await self._all(
            "SELECT * FROM payouts WHERE psp_payout_id = ANY(CAST(:psp AS text[]))"
            " OR payout_id = ANY(CAST(:ours AS text[])) ORDER BY payout_id FOR UPDATE",
            psp=list(psp_payout_ids),
            ours=list(payout_ids),
        )
        return [_payout(r) for r in rows]

    async def payouts_of_run(self, run_id: str) -> list[PayoutRow]:
        rows = await self._all("SELECT * FROM payouts WHERE run_id = :r ORDER BY payout_id", r=run_id)
        return [_payout(r) for r in rows]

    async def list_payouts(
        self,
        seller_account: str,
        period: str,
        state: str,
        before: tuple[str, str] | None,
        limit: int,
        *,
        created_from: datetime | None = None,
        created_before: datetime | None = None,
    ) -> list[PayoutRow]:
        where: list[str] = ["TRUE"]
        params: dict[str, Any] = {"limit": limit}
        if created_from is not None:
            where.append("created_at >= :created_from")
            params["created_from"] = created_from
        if created_before is not None:
            where.append("created_at < :created_before")
            params["created_before"] = created_before
        if seller_account:
            where.append("seller_account = :s")
            params["s"] = seller_account
        if period:
            where.append("period = :p")
            params["p"] = period
        if state:
            where.append("state = :state")
            params["state"] = state
        if before is not None:
            where.append("(created_at, payout_id) < (CAST(:at AS timestamptz), :pid)")
            params.update(at=before[0], pid=before[1])
        rows = await self._all(
            f"SELECT * FROM payouts WHERE {' AND '.join(where)}"
            " ORDER BY created_at DESC, payout_id DESC LIMIT :limit",
            **params,
        )
        return [_payout(r) for r in rows]

    async def claim_payout(self, payout_id: str, lease_seconds: float) -> PayoutRow | None:
        """Take the pay-out for ``lease_seconds`` unless another worker holds it; None then, or when it
        is past our steps."""
        row = await self._one(
            "UPDATE payouts SET claimed_until = now() + make_interval(secs => :lease)"
            " WHERE payout_id = :p AND state IN ('CREATED', 'RESERVED', 'TRANSFERRED')"
            " AND (claimed_until IS NULL OR claimed_until < now()) RETURNING *",
            p=payout_id,
            lease=lease_seconds,
        )
        return _payout(row) if row else None

    async def release_claim(self, payout_id: str) -> None:
        await self.conn.execute(
            _T("UPDATE payouts SET claimed_until = NULL WHERE payout_id = :p"), {"p": payout_id}
        )

    async def update_payout(self, payout_id: str, **values: Any) -> PayoutRow:
        for text in ("failure_message", "last_error"):
            if values.get(text):
                values[text] = redact(values[text])  # the PSP's words may quote a card number
        sets = ", ".join(f"{k} = :{k}" for k in values)
        row = await self._one(
            f"UPDATE payouts SET {sets}, updated_at = now() WHERE payout_id = :payout_id RETURNING *",
            payout_id=payout_id,
            **values,
        )
        return _payout(row)

    async def note_fault(self, payout_id: str, error: str, retry_in_seconds: float) -> None:
        await self.conn.execute(
            _T(
                "UPDATE payouts SET last_error = :e, attempts = attempts + 1, claimed_until = NULL,"
                " next_check_at = now() + make_interval(secs => :d), updated_at = now()"
                " WHERE payout_id = :p"
            ),
            {"p": payout_id, "e": redact(error)[:500], "d": retry_in_seconds},
        )

    async def add_transition(
        self, payout_id: str, from_state: PayoutState | None, to_state: PayoutState, cause: str, detail: str
    ) -> None:
        await self.conn.execute(
            _T(
                "INSERT INTO payout_transitions (payout_id, from_state, to_state, cause, detail)"
                " VALUES (:p, :f, :t, :c, :d)"
            ),
            {
                "p": payout_id,
                "f": from_state.value if from_state else None,
                "t": to_state.value,
                "c": cause,
                "d": redact(detail)[:1000],
            },
        )

    async def history(self, payout_id: str) -> list[TransitionRow]:
        rows = await self._all(
            "SELECT * FROM payout_transitions WHERE payout_id = :p ORDER BY id", p=payout_id
        )
        return [
            TransitionRow(
                PayoutState(r.from_state) if r.from_state else None,
                PayoutState(r.to_state),
                r.cause,
                r.detail,
                r.created_at,
            )
            for r in rows
        ]

    async def due_payouts(self, limit: int) -> list[PayoutRow]:
        """Pay-outs whose steps are unfinished and unclaimed, or in transit, due for a look."""
        rows = await self._all(
            "SELECT * FROM payouts WHERE state NOT IN ('PAID', 'FAILED', 'CANCELED')"
            " AND next_check_at <= now() AND (claimed_until IS NULL OR claimed_until < now())"
            " ORDER BY next_check_at LIMIT :limit",
            limit=limit,
        )
        return [_payout(r) for r in rows]

    async def schedule_check(self, payout_id: str, at: datetime, alerted: bool) -> None:
        await self.conn.execute(
            _T(
                "UPDATE payouts SET next_check_at = :at, attempts = attempts + 1,"
                " alerted_at = CASE WHEN :alerted THEN coalesce(alerted_at, now()) ELSE alerted_at END"
                " WHERE payout_id = :p"
            ),
            {"p": payout_id, "at": at, "alerted": alerted},
        )

    async def payouts_posted_between(
        self, seller_account: str, currency: str, start: datetime, end: datetime
    ) -> list[PayoutRow]:
        rows = await self._all(
            "SELECT * FROM payouts WHERE seller_account = :s AND currency = :c"
            " AND created_at >= :start AND created_at < :end ORDER BY created_at",
            s=seller_account,
            c=currency,
            start=start,
            end=end,
        )
        return [_payout(r) for r in rows]

    async def payouts_by_ids(self, ids: Sequence[str]) -> dict[str, PayoutRow]:
        rows = await self._all("SELECT * FROM payouts WHERE payout_id = ANY(:ids)", ids=list(ids))
        return {r.payout_id: _payout(r) for r in rows}

    async def orders_by_ids(self, ids: Sequence[str]) -> dict[str, Any]:
        rows = await self._all(
            "SELECT payment_order_id, amount_minor, commission_minor FROM payment_orders"
            " WHERE payment_order_id = ANY(:ids)",
            ids=list(ids),
        )
        return {r.payment_order_id: r for r in rows}


def _changed_payload(p: PayoutRow, from_state: PayoutState | None, cause: str) -> dict[str, Any]:
    return {
        "payout_id": p.payout_id,
        "seller_account": p.seller_account,
        "period": p.period,
        "from_state": from_state.value if from_state else None,
        "state": p.state.value,
        "amount_minor": p.amount_minor,
        "debt_netted_minor": p.debt_netted_minor,
        "currency": p.currency,
        "psp_payout_id": p.psp_payout_id,
        "failure_code": p.failure_code,
        "cause": cause,
    }


class PayoutStore:
    """Units of work over the payments database."""

    def __init__(self, engine: AsyncEngine, events_stream: str, driver: DriverPool | None = None) -> None:
        """``driver``: plain autocommit connections for the one-statement record of a PSP fact (not
        owned: the payment service's units of work close it); without one, a transaction records it."""
        self._engine = engine
        self._stream = events_stream
        self._driver = driver

    async def record_fact(self, fact: InboxFact) -> None:
        """Record a PSP pay-out fact in the inbox: one statement, idempotent on its event id."""
        if self._driver is None:
            async with self.unit() as repo:
                await repo.record_fact(fact)
            return
        async with self._driver.connection() as conn:
            await conn.execute(RECORD_FACT, record_params(fact))

    @asynccontextmanager
    async def unit(self) -> AsyncIterator[PayoutRepo]:
        """One transaction: committed when the block ends, rolled back when it raises."""
        async with self._engine.begin() as conn:
            yield PayoutRepo(conn, self._stream)

    def within(self, conn: AsyncConnection) -> PayoutRepo:
        """The queries inside a caller's transaction (HandlePspEvent's, which also stores the event id)."""
        return PayoutRepo(conn, self._stream)
