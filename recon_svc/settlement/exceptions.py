"""The exceptions queue: list and filter mismatches, assign, annotate, resolve (one or many), every action kept.

Resolving never edits a ledger entry: a correction is a new ledger transaction made by whoever resolves with
``adjusted_in_ledger``; here the mismatch records the decision, who made it, when and why.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from recon_svc.settlement import tables as t
from svckit.errors import FailedPrecondition, InvalidArgument, NotFound

MAX_PAGE = 500
MAX_BULK = 1000
MAX_TEXT = 2000


class ResolutionCode(enum.StrEnum):
    ADJUSTED_IN_LEDGER = "adjusted_in_ledger"
    WRITTEN_OFF = "written_off"
    PSP_CONTACTED = "psp_contacted"
    FALSE_POSITIVE = "false_positive"


@dataclass(frozen=True)
class Filter:
    run_id: str = ""
    code: str = ""
    classification: str = ""
    state: str = ""
    min_amount_minor: int | None = None
    """Compared with the absolute amount, so -500 and 500 are both "at least 500"."""


@dataclass(frozen=True)
class MismatchView:
    mismatch_id: str
    run_id: str
    code: str
    classification: str
    state: str
    balance_transaction_id: str
    our_reference: str
    currency: str
    amount_minor: int
    differences: list[dict[str, str]]
    line: int
    assignee: str | None
    resolution_code: str | None
    created_at: dt.datetime


def _view(r: Any) -> MismatchView:
    return MismatchView(
        r.mismatch_id, r.run_id, r.code, r.classification, r.state, r.balance_transaction_id, r.our_reference,
        r.currency, r.amount_minor, r.differences, r.line, r.assignee, r.resolution_code, r.created_at,
    )  # fmt: skip


def _text(value: str, name: str) -> str:
    value = value.strip()
    if not value:
        raise InvalidArgument("MISSING_FIELD", f"{name} is required", field=name)
    if len(value) > MAX_TEXT or "\x00" in value:
        raise InvalidArgument("TEXT_TOO_LONG", f"{name} is longer than {MAX_TEXT} characters", field=name)
    return value


async def list_mismatches(
    conn: AsyncConnection, f: Filter, limit: int = 100, after_id: int | None = None
) -> tuple[list[MismatchView], int | None]:
    """Oldest first within the filter, keyset-paged on the surrogate id; returns the page and the next cursor."""
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidArgument("INVALID_PAGE_SIZE", f"page size must be 1-{MAX_PAGE}", field="page_size")
    m = t.mismatches
    stmt = sa.select(m).order_by(m.c.id).limit(limit + 1)
    for column, value in ((m.c.run_id, f.run_id), (m.c.code, f.code), (m.c.classification, f.classification),
                          (m.c.state, f.state)):  # fmt: skip
        if value:
            stmt = stmt.where(column == value)
    if f.min_amount_minor is not None:
        stmt = stmt.where(sa.func.abs(m.c.amount_minor) >= f.min_amount_minor)
    if after_id is not None:
        stmt = stmt.where(m.c.id > after_id)
    rows = list((await conn.execute(stmt)).all())
    page = rows[:limit]
    return [_view(r) for r in page], (page[-1].id if len(rows) > limit else None)


async def get_mismatch(conn: AsyncConnection, mismatch_id: str) -> MismatchView:
    row = (
        await conn.execute(sa.select(t.mismatches).where(t.mismatches.c.mismatch_id == mismatch_id))
    ).first()
    if row is None:
        raise NotFound("MISMATCH_NOT_FOUND", f"no mismatch {mismatch_id!r}")
    return _view(row)


async def _action(conn: AsyncConnection, mismatch_id: str, actor: str, action: str, detail: str) -> None:
    await conn.execute(
        t.actions.insert().values(mismatch_id=mismatch_id, actor=actor, action=action, detail=detail)
    )


async def _locked(conn: AsyncConnection, mismatch_id: str) -> Any:
    row = (
        await conn.execute(
            sa.select(t.mismatches).where(t.mismatches.c.mismatch_id == mismatch_id).with_for_update()
        )
    ).first()
    if row is None:
        raise NotFound("MISMATCH_NOT_FOUND", f"no mismatch {mismatch_id!r}")
    return row


async def assign(conn: AsyncConnection, mismatch_id: str, assignee: str, actor: str) -> None:
    assignee = _text(assignee, "assignee")
    await _locked(conn, mismatch_id)
    await conn.execute(
        t.mismatches.update().where(t.mismatches.c.mismatch_id == mismatch_id).values(assignee=assignee)
    )
    await _action(conn, mismatch_id, actor, "assigned", assignee)


async def annotate(conn: AsyncConnection, mismatch_id: str, note: str, actor: str) -> None:
    note = _text(note, "note")
    await _locked(conn, mismatch_id)
    await _action(conn, mismatch_id, actor, "noted", note)


async def resolve(
    conn: AsyncConnection, mismatch_ids: Sequence[str], resolution: str, reason: str, actor: str
) -> int:
    """Resolve each mismatch (all or none): every one must exist and be open. Returns how many were resolved."""
    if not mismatch_ids:
        raise InvalidArgument("MISSING_FIELD", "name at least one mismatch", field="mismatch_ids")
    if len(mismatch_ids) > MAX_BULK:
        raise InvalidArgument(
            "TOO_MANY_ITEMS", f"at most {MAX_BULK} mismatches at once", field="mismatch_ids"
        )
    try:
        code = ResolutionCode(resolution)
    except ValueError:
        raise InvalidArgument(
            "INVALID_RESOLUTION_CODE",
            f"resolution must be one of {', '.join(c.value for c in ResolutionCode)}",
            field="resolution_code",
        ) from None
    reason = _text(reason, "reason")
    for mismatch_id in sorted(set(mismatch_ids)):  # one lock order, so two bulk resolves cannot deadlock
        row = await _locked(conn, mismatch_id)
        if row.state != "open":
            raise FailedPrecondition("MISMATCH_NOT_OPEN", f"mismatch {mismatch_id} is {row.state}")
        await conn.execute(
            t.mismatches.update()
            .where(t.mismatches.c.mismatch_id == mismatch_id)
            .values(state="resolved", resolution_code=code.value)
        )
        await _action(conn, mismatch_id, actor, f"resolved:{code.value}", reason)
    return len(set(mismatch_ids))


async def history(conn: AsyncConnection, mismatch_id: str) -> list[tuple[str, str, str, dt.datetime]]:
    """(actor, action, detail, when), oldest first."""
    a = t.actions
    rows = await conn.execute(
        sa.select(a.c.actor, a.c.action, a.c.detail, a.c.created_at)
        .where(a.c.mismatch_id == mismatch_id)
        .order_by(a.c.id)
    )
    return [(r.actor, r.action, r.detail, r.created_at) for r in rows]
