"""The sellers' and runs' queries of pay-outs: the part of ``PayoutRepo`` (``.repository``) that reads
and writes the seller registry, run records, run items and the scheduler's marks. Split from the
pay-out queries only to keep each module readable; one unit of work holds both (``PayoutRepo``
inherits these)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from payment_svc.payouts.domain import (
    RunItem,
    RunRow,
    Schedule,
    SellerRow,
    SellerSettings,
    SellerState,
    SkipReason,
)

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
        psp_payouts_enabled=r.psp_payouts_enabled,
        psp_account_checked_at=r.psp_account_checked_at,
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


class SellerRunQueries:
    """The seller registry's and the runs' queries, on the unit of work's connection."""

    conn: AsyncConnection

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
        # What the PSP said about the old account says nothing about a new one.
        row = await self._one(
            "UPDATE sellers SET psp_payouts_enabled = CASE WHEN psp_account IS DISTINCT FROM"
            " :psp_account THEN NULL ELSE psp_payouts_enabled END, psp_account_checked_at = CASE WHEN"
            " psp_account IS DISTINCT FROM :psp_account THEN NULL ELSE psp_account_checked_at END,"
            " psp_account = :psp_account, payout_currency = :payout_currency,"
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

    async def note_psp_account(self, psp_account: str, payouts_enabled: bool, at: datetime) -> int:
        """What the PSP said about a connected account at ``at`` (a read, or an ``account.updated``
        event's time), on every seller attached to it, unless it said something later already (events
        arrive out of order); the sellers changed."""
        result = await self.conn.execute(
            _T(
                "UPDATE sellers SET psp_payouts_enabled = :e, psp_account_checked_at = :at"
                # The PSP's event times are whole seconds: within our read's second, its word wins.
                " WHERE psp_account = :a AND (psp_account_checked_at IS NULL"
                " OR date_trunc('second', psp_account_checked_at) <= :at)"
            ),
            {"a": psp_account, "e": payouts_enabled, "at": at},
        )
        return int(getattr(result, "rowcount", 0) or 0)

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
