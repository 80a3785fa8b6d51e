"""Mismatches of a run: stored with their ``opened`` action, and the standard procedure of the auto-fixable
ones run (or proposed, when auto-fixing is off), each action recorded."""

from __future__ import annotations

import uuid
from functools import partial

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from recon_svc.settlement import tables as t
from recon_svc.settlement.categories import redrive_settlement
from recon_svc.settlement.classify import CAPTURED, CLASSIFICATION, Code, Mismatch, RowOutcome
from recon_svc.settlement.parse import SettlementRow
from recon_svc.settlement.records import OrderFixer
from svckit.errors import DomainError


def row_mismatch(code: Code, row: SettlementRow) -> RowOutcome:
    """A row's outcome that is only this mismatch (a duplicate, a row nothing of ours matches)."""
    outcome = RowOutcome()
    outcome.mismatches.append(
        Mismatch(code, CLASSIFICATION[code], row.balance_transaction_id, "", row.currency, row.gross_minor, (),
                 row.line)
    )  # fmt: skip
    return outcome


def _values(run_id: str, mismatch_id: str, m: Mismatch) -> dict[str, object]:
    return {"mismatch_id": mismatch_id, "run_id": run_id, "code": m.code.value,
            "classification": m.classification.value, "state": "open",
            "balance_transaction_id": m.balance_transaction_id, "our_reference": m.our_reference,
            "currency": m.currency, "amount_minor": m.amount_minor,
            "differences": [{"field": d.field, "ours": d.ours, "theirs": d.theirs} for d in m.differences],
            "line": m.line}  # fmt: skip


async def store(conn: AsyncConnection, run_id: str, m: Mismatch) -> str:
    """One mismatch and its ``opened`` action; its id."""
    mismatch_id = f"mm_{uuid.uuid4().hex}"
    await conn.execute(t.mismatches.insert().values(**_values(run_id, mismatch_id, m)))
    await conn.execute(
        t.actions.insert().values(
            mismatch_id=mismatch_id, actor="recon", action="opened", detail=f"{m.code.value} in run {run_id}"
        )
    )
    return mismatch_id


async def store_many(conn: AsyncConnection, run_id: str, found: list[Mismatch]) -> list[tuple[Mismatch, str]]:
    """A chunk's mismatches and their ``opened`` actions, two multi-row inserts."""
    if not found:
        return []
    stored = [(m, f"mm_{uuid.uuid4().hex}") for m in found]
    await conn.execute(t.mismatches.insert(), [_values(run_id, mid, m) for m, mid in stored])
    await conn.execute(
        t.actions.insert(),
        [
            {"mismatch_id": mid, "actor": "recon", "action": "opened", "detail": f"{m.code.value} in run {run_id}"}
            for m, mid in stored
        ],
    )  # fmt: skip
    return stored


async def settle_mismatch(
    engine: AsyncEngine, mismatch_id: str, state: str, action: str, detail: str
) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            t.mismatches.update().where(t.mismatches.c.mismatch_id == mismatch_id).values(state=state)
        )
        await conn.execute(
            t.actions.insert().values(mismatch_id=mismatch_id, actor="recon", action=action, detail=detail)
        )


async def auto_fix(engine: AsyncEngine, fixer: OrderFixer | None, m: Mismatch, mismatch_id: str) -> bool:
    """Run the standard procedure of an auto-fixable mismatch; True when it is fixed. Without a fixer
    (propose-only) the mismatch stays open with the procedure proposed."""
    if m.code is Code.FEE_DIFFERS:
        # The settlement was booked with the PSP's fee, so the ledger already carries the difference.
        await settle_mismatch(engine, mismatch_id, "auto_fixed", "auto_fixed", "booked the PSP's fee")
        return True
    if fixer is None or m.code not in (Code.PSP_CHARGED_ORDER_NOT_SUCCESS, Code.SETTLEMENT_NOT_BOOKED):
        await settle_mismatch(
            engine, mismatch_id, "open", "proposed", f"standard procedure for {m.code.value}"
        )
        return False
    order_id = m.our_reference.removeprefix("order:")
    if m.code is Code.SETTLEMENT_NOT_BOOKED:
        return await redrive_settlement(fixer, order_id, partial(settle_mismatch, engine, mismatch_id))
    try:
        order = await fixer.recheck(order_id)
    except DomainError as exc:
        await settle_mismatch(engine, mismatch_id, "open", "auto_fix_failed", f"{exc.reason}: {exc.message}")
        return False
    if order.state not in CAPTURED:
        await settle_mismatch(
            engine, mismatch_id, "open", "auto_fix_failed", f"order still {order.state.value}"
        )
        return False
    await settle_mismatch(
        engine,
        mismatch_id,
        "auto_fixed",
        "auto_fixed",
        f"payment service re-checked the order: {order.state.value}",
    )
    return True
