"""Refunds: full and partial, never more than captured, and the refund test cards' later outcomes."""

from __future__ import annotations

from typing import Any

import pytest
import stripe

from psp_sim.testing import SimServer


def _paid(client: Any, pm: str = "pm_card_visa", amount: int = 1000) -> Any:
    return client.v1.payment_intents.create(
        params={"amount": amount, "currency": "usd", "payment_method": pm, "confirm": True}
    )


def test_partial_then_rest_then_nothing_left(client: Any) -> None:
    pi = _paid(client)
    r1 = client.v1.refunds.create(
        params={"payment_intent": pi.id, "amount": 300, "reason": "requested_by_customer"}
    )
    assert r1.id.startswith("re_") and r1.status == "succeeded" and r1.amount == 300
    charge = client.v1.charges.retrieve(pi.latest_charge)
    assert charge.amount_refunded == 300 and charge.refunded is False
    with pytest.raises(stripe.InvalidRequestError) as exc:
        client.v1.refunds.create(params={"payment_intent": pi.id, "amount": 701})
    assert exc.value.code == "amount_too_large"
    r2 = client.v1.refunds.create(params={"charge": pi.latest_charge})  # the remainder
    assert r2.amount == 700
    assert client.v1.charges.retrieve(pi.latest_charge).refunded is True
    with pytest.raises(stripe.InvalidRequestError) as exc:
        client.v1.refunds.create(params={"payment_intent": pi.id, "amount": 1})
    assert exc.value.code == "charge_already_refunded"
    listed = client.v1.refunds.list(params={"payment_intent": pi.id})
    assert [r.id for r in listed.data] == [r2.id, r1.id]
    bt = client.v1.balance_transactions.retrieve(r1.balance_transaction)
    assert (bt.amount, bt.fee, bt.type, bt.reporting_category) == (-300, 0, "refund", "refund")


def test_uncaptured_or_failed_payments_cannot_be_refunded(client: Any) -> None:
    held = client.v1.payment_intents.create(
        params={
            "amount": 1000,
            "currency": "usd",
            "payment_method": "pm_card_visa",
            "confirm": True,
            "capture_method": "manual",
        }
    )
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.refunds.create(params={"payment_intent": held.id})
    open_pi = client.v1.payment_intents.create(params={"amount": 1000, "currency": "usd"})
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.refunds.create(params={"payment_intent": open_pi.id})


def test_pending_refund_card_succeeds_later(sim: SimServer, client: Any) -> None:
    pi = _paid(client, "pm_card_pendingRefund")
    refund = client.v1.refunds.create(params={"payment_intent": pi.id})
    assert refund.status == "pending"
    sim.admin.advance(days=1, seconds=5)
    assert client.v1.refunds.retrieve(refund.id).status == "succeeded"
    types = [e.type for e in client.v1.events.list(params={"limit": 100}).data]
    assert "charge.refund.updated" in types and "refund.updated" in types


def test_refund_fail_card_fails_later_and_restores_balance(sim: SimServer, client: Any) -> None:
    pi = _paid(client, "pm_card_refundFail")
    refund = client.v1.refunds.create(params={"payment_intent": pi.id, "amount": 400})
    assert refund.status == "succeeded"
    sim.admin.advance(days=1, seconds=5)
    failed = client.v1.refunds.retrieve(refund.id)
    assert failed.status == "failed" and failed.failure_reason == "expired_or_canceled_card"
    fbt = client.v1.balance_transactions.retrieve(failed.failure_balance_transaction)
    assert fbt.amount == 400 and fbt.reporting_category == "refund_failure"
    assert client.v1.charges.retrieve(pi.latest_charge).amount_refunded == 0
    types = [e.type for e in client.v1.events.list(params={"limit": 100}).data]
    assert {"refund.failed", "charge.refund.updated"} <= set(types)
