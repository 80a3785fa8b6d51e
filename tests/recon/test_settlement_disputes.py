"""Dispute rows of the PSP's settlement file against the payment service's record of the dispute (recorded from
the simulator's ``charge.dispute.*`` events): a dispute lost and one won reconcile and are booked; a dispute whose
webhook was lost, one recorded with another amount and a reversal of a dispute we hold open are each found with
their code, and nothing else is flagged."""

from __future__ import annotations

import copy
import uuid

import sqlalchemy as sa

from recon_svc.settlement import tables as t
from svckit.gen.payments.v1 import payment_service_pb2 as pb
from tests.recon import test_settlement_run as base
from tests.recon.psp_disputes import deliver, dispute_events
from tests.recon.test_settlement_day import _cart, _file
from tests.recon.test_settlement_run import _fresh_start, _mismatches, _run, _settled

recon = base.recon  # the fixture: recon's ports as the ``recon`` identity


async def _intent(recon, order: str) -> str:
    got = await recon["payments"].GetPaymentOrder(pb.GetPaymentOrderRequest(payment_order_id=order))
    return got.payment_order.psp_reference


async def test_dispute_rows_are_matched_to_the_payment_services_dispute_record(shared_psp, services, recon):
    sim = shared_psp
    # No dispute webhook reaches the payment service by itself during the test (a session gateway may be
    # subscribed): each is delivered by hand below, or lost.
    sim.admin.set_faults([{"kind": "webhook_drop", "event_type": "charge.dispute."}])
    try:
        start = _fresh_start(sim)
        method = "pm_card_createDispute"
        carts = {
            name: await _cart(recon, f"s-dp-{name}-{uuid.uuid4().hex[:6]}", amount, method)
            for name, amount in (
                ("lost", 1000),
                ("won", 1200),
                ("no_webhook", 1300),
                ("other", 1400),
                ("open", 1500),
            )
        }
        await _settled(services, list(carts.values()))
        intents = {name: await _intent(recon, order) for name, order in carts.items()}
        client = sim.client()
        disputes = {
            name: dispute_events(sim, start, pi)[0]["data"]["object"]["id"] for name, pi in intents.items()
        }
        client.v1.disputes.close(disputes["lost"])
        for name in ("won", "open"):  # the simulator's magic evidence wins at once: the funds come back
            client.v1.disputes.update(
                disputes[name], params={"evidence": {"uncategorized_text": "winning_evidence"}}
            )
        for name in ("lost", "won"):
            await deliver(sim, recon["payments"], dispute_events(sim, start, intents[name]))
        # "open": only the dispute's creation reached us, so we still hold it open (needs_response).
        opened = [
            e for e in dispute_events(sim, start, intents["open"]) if e["type"] == "charge.dispute.created"
        ]
        await deliver(sim, recon["payments"], opened)
        # "other": the creation event as if the PSP had said another amount (re-signed, so it is accepted).
        [created] = [
            e for e in dispute_events(sim, start, intents["other"]) if e["type"] == "charge.dispute.created"
        ]
        altered = copy.deepcopy(created)
        altered["data"]["object"]["amount"] = 1390
        await deliver(sim, recon["payments"], [altered])
        data = _file(sim, start)
    finally:
        sim.admin.clear_faults()

    report = await _run(recon, data)

    assert report.state == "SUCCEEDED", report
    categories = {k.split(":")[1]: v["rows"] for k, v in report.psp_totals.items()}
    assert categories == {"charge": 5, "dispute": 5, "dispute_reversal": 2}
    found = {(m.code, m.classification, m.our_reference) for m in await _mismatches(recon, report.run_id)}
    checkout = {name: "co_" + order.split("_")[1] for name, order in carts.items()}
    assert found == {
        ("DISPUTE_RECORD_MISSING", "manual", f"checkout:{checkout['no_webhook']}"),
        ("AMOUNT_DIFFERS", "manual", f"checkout:{checkout['other']}"),
        ("DISPUTE_STATUS_DIFFERS", "manual", f"checkout:{checkout['open']}"),
    }
    by_code = {m.code: m for m in await _mismatches(recon, report.run_id)}
    assert by_code["AMOUNT_DIFFERS"].differences == [
        {"field": "dispute.amount_minor", "ours": "1390", "theirs": "1400"}
    ]
    assert by_code["DISPUTE_STATUS_DIFFERS"].differences == [
        {"field": "dispute.status", "ours": "needs_response", "theirs": "won (funds reinstated)"}
    ]
    assert by_code["DISPUTE_RECORD_MISSING"].differences[0]["ours"] == "absent"
    # Booked: every charge, and every dispute row but the one whose amount differs from our record (the
    # webhook-less dispute and the reversal of the one we hold open moved money at the PSP all the same).
    assert report.booked == 5 + 4 + 2
    async with recon["engine"].connect() as conn:
        unbooked = (
            await conn.execute(
                sa.select(t.rows.c.balance_transaction_id).where(
                    t.rows.c.run_id == report.run_id,
                    t.rows.c.reporting_category.like("dispute%"),
                    t.rows.c.booking_id.is_(None),
                )
            )
        ).scalars()
        assert list(unbooked) == [by_code["AMOUNT_DIFFERS"].balance_transaction_id]
