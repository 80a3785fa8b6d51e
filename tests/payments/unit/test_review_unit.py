"""An operator's decision on orders held by risk, against the in-memory unit of work."""

from __future__ import annotations

import pytest

from payment_svc.domain import PendingReason
from payment_svc.usecases.checkout import Checkout
from payment_svc.usecases.review import Review
from svckit.errors import FailedPrecondition
from tests.payments.unit.fakes import FakePsp, FakeUnitsOfWork, checkout, deps, line_items, order

HELD = {"pending_reason": PendingReason.RISK_REVIEW.value}


def _review(uows: FakeUnitsOfWork, psp: FakePsp | None = None) -> Review:
    built = deps(uows, psp)
    return Review(built, Checkout(built))


async def test_declining_fails_every_held_order_of_the_checkout_with_the_reviewers_note():
    uows = FakeUnitsOfWork()
    checkout(uows, "co-r1")
    order(uows, "po-r1a", "co-r1", "PENDING", **HELD)
    order(uows, "po-r1b", "co-r1", "PENDING", **HELD)
    psp = FakePsp()
    answer = await _review(uows, psp).review("po-r1a", False, "ana", "stolen card")
    assert (answer.state, answer.failure_code, answer.failure_message) == (
        "FAILED",
        "RISK_DECLINED",
        "stolen card",
    )
    assert {o.state for o in uows.store.orders.values()} == {"FAILED"}
    assert {(t.cause, t.detail) for t in uows.store.transitions} == {("review:decline", "ana: stolen card")}
    assert psp.calls == []  # nothing reaches the PSP


async def test_approving_moves_the_held_orders_on_and_registers_them_with_the_psp_once():
    uows = FakeUnitsOfWork()
    checkout(uows, "co-r2")
    order(uows, "po-r2a", "co-r2", "PENDING", amount_minor=700, **HELD)
    order(uows, "po-r2b", "co-r2", "PENDING", amount_minor=300, **HELD)
    psp = FakePsp()
    answer = await _review(uows, psp).review("po-r2b", True, "", "looks fine")
    assert answer.state == "EXECUTING"
    assert {o.state for o in uows.store.orders.values()} == {"EXECUTING"}
    assert [(i.payment_order_id, i.amount_minor) for i in line_items(psp.calls)] == [
        ("po-r2a", 700),
        ("po-r2b", 300),
    ]
    assert uows.store.events["co-r2"].psp_session_id == "cs_co-r2"
    assert [t.cause for t in uows.store.transitions] == ["review:approve", "review:approve"]


async def test_an_order_not_waiting_for_review_is_refused_and_nothing_changes():
    uows = FakeUnitsOfWork()
    checkout(uows, "co-r3")
    order(uows, "po-r3a", "co-r3", "PENDING", pending_reason=PendingReason.PSP_PROCESSING.value)
    order(uows, "po-r3b", "co-r3", "PENDING", **HELD)
    before = dict(uows.store.orders)
    with pytest.raises(FailedPrecondition) as exc:
        await _review(uows).review("po-r3a", True, "ana", "")
    assert exc.value.reason == "ORDER_NOT_IN_REVIEW"
    assert uows.store.orders == before
    assert uows.store.transitions == []
