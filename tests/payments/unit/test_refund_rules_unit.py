"""Refund rules (what may be refunded, the reservation, the PSP's answers), against the in-memory unit
of work and a PSP that answers what the test says."""

from __future__ import annotations

import pytest

from payment_svc.psp import PspRejected
from payment_svc.psp_objects import RefundView
from payment_svc.settlement import REFUND_SUCCEEDED
from payment_svc.usecases.commands import refund_id_for
from payment_svc.usecases.refunds import Refunds
from svckit.errors import DomainError
from tests.payments.unit.fakes import FakePsp, FakeUnitsOfWork, checkout, deps, order

CAPTURED = {"psp_reference": "pi_r", "commission_minor": 100}


def _refunds(uows: FakeUnitsOfWork, psp: FakePsp) -> Refunds:
    return Refunds(deps(uows, psp))


@pytest.mark.parametrize(
    ("state", "amount", "currency", "reason"),
    [
        ("EXECUTING", 100, "USD", "ORDER_NOT_REFUNDABLE"),
        ("REFUNDED", 100, "USD", "ORDER_NOT_REFUNDABLE"),
        ("SUCCESS", 1001, "USD", "REFUND_EXCEEDS_CAPTURED"),
        ("SUCCESS", 15, "KWD", "AMOUNT_PRECISION_EXCEEDED"),
        ("SUCCESS", -1, "USD", "AMOUNT_NOT_POSITIVE"),
    ],
)
async def test_a_refund_the_rules_refuse_stores_nothing_and_asks_the_psp_nothing(
    state, amount, currency, reason
):
    uows = FakeUnitsOfWork()
    checkout(uows, "co-f1")
    before = order(uows, "po-f1", "co-f1", state, currency=currency, **CAPTURED)
    psp = FakePsp()
    with pytest.raises(DomainError) as exc:
        await _refunds(uows, psp).create_refund("po-f1", amount, "", "key-f1")
    assert exc.value.reason == reason
    assert uows.store.orders["po-f1"] == before
    assert uows.store.refunds == {} and uows.store.transitions == [] and psp.calls == []


async def test_an_unknown_order_is_not_found():
    uows = FakeUnitsOfWork()
    with pytest.raises(DomainError) as exc:
        await _refunds(uows, FakePsp()).create_refund("po-none", 100, "", "key")
    assert exc.value.reason == "PAYMENT_ORDER_NOT_FOUND"


async def test_a_partial_then_a_full_refund_give_back_the_whole_commission_and_release_the_reservations():
    uows = FakeUnitsOfWork()
    checkout(uows, "co-f2")
    order(uows, "po-f2", "co-f2", "SUCCESS", **CAPTURED)
    psp = FakePsp()
    refunds = _refunds(uows, psp)
    first_id = refund_id_for("po-f2", "k1")
    psp.refund_answer = RefundView(id="re_1", status="succeeded", refund_id=first_id, failure_reason=None)
    refund, after_first = await refunds.create_refund("po-f2", 333, "requested_by_customer", "k1")
    assert (refund.state, refund.amount_minor, refund.psp_reference) == ("SUCCEEDED", 333, "re_1")
    assert (after_first.state, after_first.refunded_minor, after_first.refund_reserved_minor) == (
        "PARTIALLY_REFUNDED",
        333,
        0,
    )
    second_id = refund_id_for("po-f2", "k2")
    psp.refund_answer = RefundView(id="re_2", status="succeeded", refund_id=second_id, failure_reason=None)
    _, after_second = await refunds.create_refund("po-f2", 0, "", "k2")  # 0: whatever is left
    assert (after_second.state, after_second.refunded_minor) == ("REFUNDED", 1000)
    events = [e for e in uows.store.outbox if e["type"] == REFUND_SUCCEEDED]
    assert [(e["payload"]["amount_minor"], e["payload"]["commission_minor"]) for e in events] == [
        (333, 33),
        (667, 67),
    ]
    assert [kw["amount_minor"] for _, kw in psp.calls] == [333, 667]


async def test_a_refund_the_psp_refuses_releases_its_reservation():
    uows = FakeUnitsOfWork()
    checkout(uows, "co-f3")
    order(uows, "po-f3", "co-f3", "SUCCESS", **CAPTURED)
    psp = FakePsp(refund_answer=PspRejected("charge_disputed", "the charge is disputed"))
    refund, after = await _refunds(uows, psp).create_refund("po-f3", 400, "", "k")
    assert (refund.state, refund.failure_reason) == ("FAILED", "charge_disputed")
    assert (after.state, after.refunded_minor, after.refund_reserved_minor) == ("SUCCESS", 0, 0)
    assert uows.store.outbox == []


async def test_a_payment_the_psp_does_not_know_is_refused_the_same_way_on_every_retry():
    uows = FakeUnitsOfWork()
    checkout(uows, "co-f4")
    order(uows, "po-f4", "co-f4", "SUCCESS", **CAPTURED)
    psp = FakePsp(refund_answer=PspRejected("resource_missing", "No such payment_intent"))
    refunds = _refunds(uows, psp)
    for _ in range(2):
        with pytest.raises(DomainError) as exc:
            await refunds.create_refund("po-f4", 400, "", "same-key")
        assert exc.value.reason == "PSP_PAYMENT_UNKNOWN"
    assert len(psp.calls) == 1  # the retry answers from the stored refund
    assert uows.store.orders["po-f4"].refund_reserved_minor == 0
