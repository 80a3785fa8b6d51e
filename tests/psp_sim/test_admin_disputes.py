"""Admin endpoints (state, reset, clock) and the dispute test cards."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import stripe

from psp_sim.testing import SimServer


def test_state_reset_and_clock(sim: SimServer, client: Any) -> None:
    pi = client.v1.payment_intents.create(
        params={"amount": 100, "currency": "usd", "payment_method": "pm_card_visa", "confirm": True},
        options={"idempotency_key": "admin-1"},
    )
    state = sim.admin.state()
    assert [o["id"] for o in state["objects"]["payment_intent"]] == [pi.id]
    assert state["balances"] == [{"account": None, "currency": "usd", "available": 0, "pending": 100 - 33}]
    assert state["idempotency_keys"] == 1
    only = sim.admin.state("charge")
    assert list(only["objects"]) == ["charge"]

    before = sim.admin.now()
    assert sim.admin.advance(hours=1, minutes=1) >= before + 3660
    resp = httpx.post(f"{sim.base_url}/_sim/clock/advance", json={"seconds": -5})
    assert resp.status_code == 400

    sim.admin.reset()
    after = sim.admin.state()
    assert after["objects"] == {} and after["events"] == [] and after["idempotency_keys"] == 0
    assert after["now"] >= before + 3660  # time never goes back
    again = client.v1.payment_intents.create(
        params={"amount": 100, "currency": "usd", "payment_method": "pm_card_visa", "confirm": True},
        options={"idempotency_key": "admin-1"},
    )
    assert again.id != pi.id  # the key was forgotten and ids never repeat


@pytest.mark.parametrize(
    ("pm", "reason", "withdrawn"),
    [
        ("pm_card_createDispute", "fraudulent", True),
        ("pm_card_createDisputeProductNotReceived", "product_not_received", True),
        ("pm_card_createDisputeInquiry", "general", False),
    ],
)
def test_dispute_cards(sim: SimServer, client: Any, pm: str, reason: str, withdrawn: bool) -> None:
    pi = client.v1.payment_intents.create(
        params={"amount": 5000, "currency": "usd", "payment_method": pm, "confirm": True}
    )
    assert pi.status == "succeeded"
    charge = client.v1.charges.retrieve(pi.latest_charge)
    assert charge.disputed is True
    (created,) = client.v1.events.list(params={"type": "charge.dispute.created"}).data
    dispute = client.v1.disputes.retrieve(created.data.object.id)
    assert dispute.reason == reason and dispute.charge == charge.id and dispute.amount == 5000
    adjustments = client.v1.balance_transactions.list(params={"type": "adjustment"}).data
    if withdrawn:
        (bt,) = adjustments
        assert (bt.amount, bt.fee, bt.reporting_category, bt.source) == (-5000, 1500, "dispute", dispute.id)
        assert dispute.status == "needs_response"
    else:
        assert adjustments == [] and dispute.status == "warning_needs_response"


def test_dispute_evidence_closing_and_winning(sim: SimServer, client: Any) -> None:
    disputes = []
    for key in ("lose", "win"):
        pi = client.v1.payment_intents.create(
            params={
                "amount": 2000,
                "currency": "usd",
                "payment_method": "pm_card_createDispute",
                "confirm": True,
            },
            options={"idempotency_key": f"dispute-{key}"},
        )
        disputes.append(
            next(
                e.data.object
                for e in client.v1.events.list(params={"type": "charge.dispute.created"}).data
                if e.data.object.payment_intent == pi.id
            )
        )
    lose, win = disputes

    reviewed = client.v1.disputes.update(lose.id, params={"evidence": {"uncategorized_text": "receipt"}})
    assert reviewed.status == "under_review" and reviewed.evidence_details.submission_count == 1
    closed = client.v1.disputes.close(lose.id)
    assert closed.status == "lost"
    with pytest.raises(stripe.InvalidRequestError, match="already closed"):
        client.v1.disputes.close(lose.id)
    won = client.v1.disputes.update(win.id, params={"evidence": {"uncategorized_text": "winning_evidence"}})
    assert won.status == "won"
    types = [
        (e.type, e.data.object.status)
        for e in reversed(client.v1.events.list(params={"limit": 100}).data)
        if e.type.startswith("charge.dispute.") and e.type != "charge.dispute.created"
    ]
    assert types == [
        ("charge.dispute.funds_withdrawn", "needs_response"),
        ("charge.dispute.funds_withdrawn", "needs_response"),
        ("charge.dispute.updated", "under_review"),
        ("charge.dispute.closed", "lost"),
        ("charge.dispute.updated", "under_review"),
        ("charge.dispute.closed", "won"),
        ("charge.dispute.funds_reinstated", "won"),
    ]
    reinstated = [
        bt
        for bt in client.v1.balance_transactions.list(params={"type": "adjustment"}).data
        if bt.source == win.id
    ]
    assert sorted((bt.amount, bt.reporting_category) for bt in reinstated) == [
        (-2000, "dispute"),
        (2000, "dispute_reversal"),
    ]
