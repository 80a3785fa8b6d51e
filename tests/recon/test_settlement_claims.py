"""The claim of a chunk's rows (one statement): the digest PostgreSQL computes is the one recon always stored,
and a row claimed before is answered as taken (with whether its content was the same and by which run),
changing nothing of the earlier claim."""

from __future__ import annotations

import datetime as dt
import uuid

import sqlalchemy as sa

from recon_svc.settlement import tables as t
from recon_svc.settlement.claims import Claim, Taken, claim, digest
from recon_svc.settlement.parse import SettlementRow


def _row(
    bt: str, gross: int, fee: int, *, currency: str = "USD", category: str = "charge", source: str = "ch_1"
):
    return SettlementRow(1, bt, dt.datetime(2026, 11, 20, tzinfo=dt.UTC), currency, gross, fee, gross - fee,
                         category, source)  # fmt: skip


async def _stored(engine, ids: list[str]) -> dict[str, tuple[str, str, int]]:
    async with engine.connect() as conn:
        result = await conn.execute(
            sa.select(t.rows.c.balance_transaction_id, t.rows.c.row_digest, t.rows.c.run_id, t.rows.c.gross_minor)
            .where(t.rows.c.balance_transaction_id.in_(ids))
        )  # fmt: skip
        return {r.balance_transaction_id: (r.row_digest, r.run_id, r.gross_minor) for r in result}


async def test_the_stored_digest_is_the_python_digest_of_the_row(services):
    engine = services["recon"].engine
    tag = uuid.uuid4().hex[:10]
    rows = [
        _row(f"txn_{tag}_a", 1234, 66),
        _row(f"txn_{tag}_b", -1234, 0, category="refund", source=f"re_{tag}"),
        _row(f"txn_{tag}_c", 500, 20, currency="JPY", source=""),
        _row(f"txn_{tag}_d", 0, 150, category="fee", source="fee_X9_z"),
    ]
    async with engine.begin() as conn:
        taken = await claim(conn, f"rr_{tag}", [Claim(r, f"checkout:co_{tag}", "") for r in rows])
    assert taken == {}
    stored = await _stored(engine, [r.balance_transaction_id for r in rows])
    assert {bt: d for bt, (d, _, _) in stored.items()} == {r.balance_transaction_id: digest(r) for r in rows}


async def test_a_row_claimed_before_is_answered_as_taken_and_its_claim_is_unchanged(services):
    engine = services["recon"].engine
    tag = uuid.uuid4().hex[:10]
    first, second = f"rr_{tag}_1", f"rr_{tag}_2"
    same, changed, fresh = f"txn_{tag}_same", f"txn_{tag}_changed", f"txn_{tag}_fresh"
    async with engine.begin() as conn:
        await claim(
            conn, first, [Claim(_row(same, 1000, 59), "", ""), Claim(_row(changed, 1000, 59), "", "")]
        )
    before = await _stored(engine, [same, changed])
    async with engine.begin() as conn:
        taken = await claim(
            conn,
            second,
            [
                Claim(_row(same, 1000, 59), "", ""),
                Claim(_row(changed, 999, 59), "", ""),
                Claim(_row(fresh, 1, 0), "", ""),
            ],
        )
    assert taken == {same: Taken(True, first), changed: Taken(False, first)}
    after = await _stored(engine, [same, changed, fresh])
    assert (
        after[same] == before[same] and after[changed] == before[changed]
    )  # nothing of the earlier claims moved
    assert after[fresh][1] == second
