"""Every query of pay-outs. ``PayoutStore`` hands out units of work (``async with store.unit() as repo``)
whose ``PayoutRepo`` holds the queries; rows come back as the typed rows of :mod:`.domain`.

The store is the seam a service-wide unit of work replaces: nothing else in this package touches the
database.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from payment_svc.payouts.domain import (
    PayoutRow,
    PayoutState,
    RunItem,
    RunRow,
    Schedule,
    SellerRow,
    SellerSettings,
    SellerState,
    SkipReason,
    TransitionRow,
    can_move,
)
from svckit.events import outbox
from svckit.redaction import redact

_T = sa.text


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def _seller(r: Any) -> SellerRow:
    return SellerRow(
        seller_account=r.seller_account,
        psp_account=r.psp_account,
        payout_currency=r.payout_currency,
        schedule=Schedule(r.schedule),
        anchor_day=r.anchor_day,
        minimums={k: int(v) for k, v in (_json(r.minimums) or {}).items()},
        reserve_bps=r.reserve_bps,
        reserve_days=r.reserve_days,
        state=SellerState(r.state),
        state_reason=r.state_reason,
        created_at=r.created_at,
        updated_at=r.updated_at,
    )


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


def _run(r: Any) -> RunRow:
    return RunRow(
        run_id=r.run_id,
        period=r.period,
        dry_run=r.dry_run,
        state=r.state,
        sellers_total=r.sellers_total,
        sellers_done=r.sellers_done,
        payouts_created=r.payouts_created,
        sellers_skipped=r.sellers_skipped,
        seller_filter=list(_json(r.seller_filter) or []),
        created_at=r.created_at,
        finished_at=r.finished_at,
    )


def _item(r: Any) -> RunItem:
    return RunItem(
        seller_account=r.seller_account,
        amount_minor=r.amount_minor,
        currency=r.currency,
        payout_id=r.payout_id,
        skip_reason=SkipReason(r.skip_reason) if r.skip_reason else None,
        detail=r.detail,
        available_minor=r.available_minor,
        reserve_held_minor=r.reserve_held_minor,
    )


PAYOUT_STATE_CHANGED = "payout.state_changed"
"""The backbone event of every pay-out state change (its creation included)."""


class PayoutRepo:
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

    async def _one(self, sql: str, **params: Any) -> Any:
        return (await self.conn.execute(_T(sql), params)).first()

    async def _all(self, sql: str, **params: Any) -> list[Any]:
        return list((await self.conn.execute(_T(sql), params)).all())

    # -- sellers -------------------------------------------------------------------------------

    async def insert_seller(self, s: SellerSettings) -> SellerRow | None:
        """The new seller, or None when the id is taken."""
        row = await self._one(
            "INSERT INTO sellers (seller_account, psp_account, payout_currency, schedule, anchor_day,"
            " minimums, reserve_bps, reserve_days, state)"
            " VALUES (:seller_account, :psp_account, :payout_currency, :schedule, :anchor_day,"
            " CAST(:minimums AS json), :reserve_bps, :reserve_days, 'ACTIVE')"
            " ON CONFLICT (seller_account) DO NOTHING RETURNING *",
            **_settings_params(s),
        )
        return _seller(row) if row else None

    async def update_seller(self, s: SellerSettings) -> SellerRow:
        row = await self._one(
            "UPDATE sellers SET psp_account = :psp_account, payout_currency = :payout_currency,"
            " schedule = :schedule, anchor_day = :anchor_day, minimums = CAST(:minimums AS json),"
            " reserve_bps = :reserve_bps, reserve_days = :reserve_days, updated_at = now()"
            " WHERE seller_account = :seller_account RETURNING *",
            **_settings_params(s),
        )
        return _seller(row)

    async def set_seller_state(
        self, seller_account: str, state: SellerState, reason: str
    ) -> SellerRow | None:
        row = await self._one(
            "UPDATE sellers SET state = :state, state_reason = :reason, updated_at = now()"
            " WHERE seller_account = :s RETURNING *",
            s=seller_account,
            state=state.value,
            reason=reason,
        )
        return _seller(row) if row else None

    async def get_seller(self, seller_account: str, for_update: bool = False) -> SellerRow | None:
        lock = " FOR UPDATE" if for_update else ""
        row = await self._one(f"SELECT * FROM sellers WHERE seller_account = :s{lock}", s=seller_account)
        return _seller(row) if row else None

    async def list_sellers(
        self, after: str, limit: int, prefix: str = "", state: str = ""
    ) -> list[SellerRow]:
        """Sellers after ``after`` in account order; ``prefix`` and ``state`` filter when not empty."""
        rows = await self._all(
            "SELECT * FROM sellers WHERE seller_account > :after"
            " AND (:prefix = '' OR starts_with(seller_account, :prefix))"
            " AND (:state = '' OR state = :state)"
            " ORDER BY seller_account LIMIT :limit",
            after=after,
            prefix=prefix,
            state=state,
            limit=limit,
        )
        return [_seller(r) for r in rows]

    async def sellers_for_run(self, schedule: Schedule, named: Sequence[str]) -> list[SellerRow]:
        """The named sellers (any schedule), else every seller on the period's schedule."""
        if named:
            rows = await self._all(
                "SELECT * FROM sellers WHERE seller_account = ANY(:named) ORDER BY seller_account",
                named=list(named),
            )
        else:
            rows = await self._all(
                "SELECT * FROM sellers WHERE schedule = :schedule ORDER BY seller_account",
                schedule=schedule.value,
            )
        return [_seller(r) for r in rows]

    async def recent_net_sales(
        self, seller_account: str, currency: str, since: datetime, until: datetime | None = None
    ) -> int:
        """Net (amount less commission and refunds) of the seller's captured orders created in
        [since, until): what the rolling reserve is a share of."""
        row = await self._one(
            "SELECT coalesce(sum(amount_minor - commission_minor - refunded_minor), 0) AS net"
            " FROM payment_orders WHERE seller_account = :s AND currency = :c AND created_at >= :since"
            " AND (CAST(:until AS timestamptz) IS NULL OR created_at < :until)"
            " AND state IN ('SUCCESS', 'PARTIALLY_REFUNDED')",
            s=seller_account,
            c=currency,
            since=since,
            until=until,
        )
        return int(row.net)

    # -- runs ----------------------------------------------------------------------------------

    async def insert_run(
        self, run_id: str, period: str, dry_run: bool, seller_filter: Sequence[str], total: int
    ) -> RunRow:
        row = await self._one(
            "INSERT INTO payout_runs (run_id, period, dry_run, state, sellers_total, seller_filter)"
            " VALUES (:run_id, :period, :dry_run, 'RUNNING', :total, CAST(:filter AS json)) RETURNING *",
            run_id=run_id,
            period=period,
            dry_run=dry_run,
            total=total,
            filter=json.dumps(list(seller_filter)),
        )
        return _run(row)

    async def mark_scheduled(self, period: str, anchor_day: int, run_id: str) -> bool:
        """Claim the scheduler's start of (period, anchor day); False when a replica already did."""
        row = await self._one(
            "INSERT INTO payout_schedule_marks (period, anchor_day, run_id) VALUES (:p, :a, :r)"
            " ON CONFLICT DO NOTHING RETURNING run_id",
            p=period,
            a=anchor_day,
            r=run_id,
        )
        return row is not None

    async def scheduled_anchors(self) -> list[tuple[Schedule, int]]:
        """Every (schedule, anchor day) some seller has, for the scheduler."""
        rows = await self._all(
            "SELECT DISTINCT schedule, anchor_day FROM sellers WHERE schedule IN ('MONTHLY', 'WEEKLY')"
        )
        return [(Schedule(r.schedule), r.anchor_day) for r in rows]

    async def sellers_of_anchor(self, schedule: Schedule, anchor_day: int) -> list[str]:
        rows = await self._all(
            "SELECT seller_account FROM sellers WHERE schedule = :s AND anchor_day = :a"
            " ORDER BY seller_account",
            s=schedule.value,
            a=anchor_day,
        )
        return [r.seller_account for r in rows]

    async def get_run(self, run_id: str) -> RunRow | None:
        row = await self._one("SELECT * FROM payout_runs WHERE run_id = :r", r=run_id)
        if row is None:
            return None
        items = await self._all(
            "SELECT * FROM payout_run_items WHERE run_id = :r ORDER BY seller_account", r=run_id
        )
        run = _run(row)
        run.items.extend(_item(i) for i in items)
        return run

    async def list_runs(self, period: str, before: tuple[str, str] | None, limit: int) -> list[RunRow]:
        """Runs newest first (without items), of ``period`` when not empty, after the ``before``
        position (created_at ISO text, run_id) of the previous page."""
        where: list[str] = ["TRUE"]
        params: dict[str, Any] = {"limit": limit}
        if period:
            where.append("period = :p")
            params["p"] = period
        if before is not None:
            where.append("(created_at, run_id) < (CAST(:at AS timestamptz), :rid)")
            params.update(at=before[0], rid=before[1])
        rows = await self._all(
            f"SELECT * FROM payout_runs WHERE {' AND '.join(where)} ORDER BY created_at DESC, run_id DESC LIMIT :limit",
            **params,
        )
        return [_run(r) for r in rows]

    async def claim_run(self, run_id: str, lease_seconds: float) -> bool:
        row = await self._one(
            "UPDATE payout_runs SET claimed_until = now() + make_interval(secs => :lease)"
            " WHERE run_id = :r AND state = 'RUNNING' AND (claimed_until IS NULL OR claimed_until < now())"
            " RETURNING run_id",
            r=run_id,
            lease=lease_seconds,
        )
        return row is not None

    async def release_run(self, run_id: str) -> None:
        await self.conn.execute(
            _T("UPDATE payout_runs SET claimed_until = NULL WHERE run_id = :r"), {"r": run_id}
        )

    async def stale_runs(self, limit: int) -> list[str]:
        rows = await self._all(
            "SELECT run_id FROM payout_runs WHERE state = 'RUNNING'"
            " AND (claimed_until IS NULL OR claimed_until < now()) ORDER BY created_at LIMIT :limit",
            limit=limit,
        )
        return [r.run_id for r in rows]

    async def planned_sellers(self, run_id: str) -> set[str]:
        rows = await self._all("SELECT seller_account FROM payout_run_items WHERE run_id = :r", r=run_id)
        return {r.seller_account for r in rows}

    async def add_run_item(self, run_id: str, item: RunItem) -> bool:
        """Record a seller's line once; counts it in the run's progress. False when already there."""
        row = await self._one(
            "INSERT INTO payout_run_items (run_id, seller_account, amount_minor, currency, payout_id,"
            " skip_reason, detail, available_minor, reserve_held_minor)"
            " VALUES (:r, :s, :amount, :currency, :payout_id, :reason, :detail, :available, :held)"
            " ON CONFLICT DO NOTHING RETURNING run_id",
            r=run_id,
            s=item.seller_account,
            amount=item.amount_minor,
            currency=item.currency,
            payout_id=item.payout_id,
            reason=item.skip_reason.value if item.skip_reason else "",
            detail=item.detail,
            available=item.available_minor,
            held=item.reserve_held_minor,
        )
        if row is None:
            return False
        created = item.skip_reason is None
        await self.conn.execute(
            _T(
                "UPDATE payout_runs SET sellers_done = sellers_done + 1,"
                " payouts_created = payouts_created + :created, sellers_skipped = sellers_skipped + :skipped"
                " WHERE run_id = :r"
            ),
            {"r": run_id, "created": int(created), "skipped": int(not created)},
        )
        return True

    async def finish_run(self, run_id: str) -> None:
        await self.conn.execute(
            _T(
                "UPDATE payout_runs SET state = 'COMPLETED', finished_at = now(), claimed_until = NULL"
                " WHERE run_id = :r AND state = 'RUNNING'"
            ),
            {"r": run_id},
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


def _settings_params(s: SellerSettings) -> dict[str, Any]:
    return {
        "seller_account": s.seller_account,
        "psp_account": s.psp_account,
        "payout_currency": s.payout_currency,
        "schedule": s.schedule.value,
        "anchor_day": s.anchor_day,
        "minimums": json.dumps(s.minimums, sort_keys=True),
        "reserve_bps": s.reserve_bps,
        "reserve_days": s.reserve_days,
    }


class PayoutStore:
    """Units of work over the payments database."""

    def __init__(self, engine: AsyncEngine, events_stream: str) -> None:
        self._engine = engine
        self._stream = events_stream

    @asynccontextmanager
    async def unit(self) -> AsyncIterator[PayoutRepo]:
        """One transaction: committed when the block ends, rolled back when it raises."""
        async with self._engine.begin() as conn:
            yield PayoutRepo(conn, self._stream)

    def within(self, conn: AsyncConnection) -> PayoutRepo:
        """The queries inside a caller's transaction (HandlePspEvent's, which also stores the event id)."""
        return PayoutRepo(conn, self._stream)
