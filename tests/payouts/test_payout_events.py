"""Every pay-out state change is an event on the backbone (the outbox, committed with the change)."""

from __future__ import annotations

import sqlalchemy as sa

from tests.payouts.conftest import PayoutStack, uid


async def test_each_state_change_of_a_payout_is_one_event_in_order(stack: PayoutStack):
    seller = uid("s-events")
    await stack.register(seller)
    await stack.sell(seller, 2_000)  # owed 1800
    (item,) = [i for i in (await stack.pay([seller])).items if i.seller_account == seller]
    sent = (await stack.payout(item.payout_id)).payout
    stack.sim.admin.advance(days=2)
    (paid,) = stack.payout_events(sent.psp_account, sent.psp_payout_id)
    assert await stack.settle(paid) == "APPLIED"
    assert await stack.settle(dict(paid, id=f"{paid['id']}_again")) == "NO_CHANGE"  # no event

    async with stack.handle.engine.connect() as conn:
        rows = (
            await conn.execute(
                sa.text("SELECT type, payload FROM event_outbox WHERE aggregate_id = :p ORDER BY seq"),
                {"p": item.payout_id},
            )
        ).all()
    assert {r.type for r in rows} == {"payout.state_changed"}
    steps = [(r.payload["from_state"], r.payload["state"]) for r in rows]
    assert steps == [
        (None, "CREATED"),
        ("CREATED", "RESERVED"),
        ("RESERVED", "TRANSFERRED"),
        ("TRANSFERRED", "IN_TRANSIT"),
        ("IN_TRANSIT", "PAID"),
    ]
    last = rows[-1].payload
    assert (last["seller_account"], last["amount_minor"], last["currency"]) == (seller, 1_800, "USD")
    assert last["psp_payout_id"] == sent.psp_payout_id
