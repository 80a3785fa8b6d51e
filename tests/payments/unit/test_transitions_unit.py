"""The one place an order changes state, against the in-memory unit of work."""

from __future__ import annotations

from payment_svc.domain import OrderState
from payment_svc.settlement import ORDER_SUCCEEDED
from tests.payments.unit.fakes import STREAM, FakeUnitsOfWork, checkout, deps, order

S = OrderState


async def test_a_move_the_table_refuses_changes_nothing_and_writes_no_history():
    uows = FakeUnitsOfWork()
    checkout(uows, "co-1")
    before = order(uows, "po-1", "co-1", "SUCCESS", psp_reference="pi_1")
    moves = deps(uows).moves
    async with uows.transaction() as uow:
        assert not await moves.move(uow, before, S.FAILED, "psp_event:late", "", failure_code="declined")
    assert uows.store.orders["po-1"] == before
    assert uows.store.transitions == []
    assert uows.store.outbox == []


async def test_success_fixes_the_sellers_commission_and_writes_its_settlement_event_with_it():
    uows = FakeUnitsOfWork()
    checkout(uows, "co-2")
    executing = order(uows, "po-2", "co-2", "EXECUTING", amount_minor=2000, seller="seller-low-fee")
    moves = deps(uows, commission_rate_bps=1000, commission_overrides_bps={"seller-low-fee": 250}).moves
    async with uows.transaction() as uow:
        assert await moves.move(uow, executing, S.SUCCESS, "psp:confirm", "pi_2", psp_reference="pi_2")
    moved = uows.store.orders["po-2"]
    assert (moved.state, moved.commission_minor, moved.psp_reference) == ("SUCCESS", 50, "pi_2")
    assert moved.next_check_at is None
    assert [(t.from_state, t.to_state, t.cause) for t in uows.store.transitions] == [
        ("EXECUTING", "SUCCESS", "psp:confirm")
    ]
    assert uows.store.outbox == [
        {
            "stream": STREAM,
            "aggregate_id": "po-2",
            "type": ORDER_SUCCEEDED,
            "payload": {
                "payment_order_id": "po-2",
                "checkout_id": "co-2",
                "seller_account": "seller-low-fee",
                "amount_minor": 2000,
                "commission_minor": 50,
                "currency": "USD",
            },
        }
    ]


async def test_a_same_state_move_updates_fields_without_a_history_line():
    uows = FakeUnitsOfWork()
    checkout(uows, "co-3")
    executing = order(uows, "po-3", "co-3", "EXECUTING")
    moves = deps(uows).moves
    async with uows.transaction() as uow:
        assert not await moves.move(
            uow, executing, S.EXECUTING, "psp:session_created", "", psp_reference="pi_3"
        )
    assert uows.store.orders["po-3"].psp_reference == "pi_3"
    assert uows.store.transitions == []


async def test_the_one_statement_move_only_leaves_states_that_may_reach_the_target():
    uows = FakeUnitsOfWork()
    checkout(uows, "co-4", mode="DIRECT")
    failed = order(uows, "po-4", "co-4", "FAILED")
    fresh = order(uows, "po-5", "co-4", "NOT_STARTED")
    moves = deps(uows).moves
    assert await moves.move_at_once(failed, S.SUCCESS, "psp:confirm", "pi_4", psp_reference="pi_4") is None
    moved = await moves.move_at_once(fresh, S.SUCCESS, "psp:confirm", "pi_5", psp_reference="pi_5")
    assert moved is not None and (moved.payment_order_id, moved.state) == ("po-5", "SUCCESS")
    assert uows.store.orders["po-4"].state == "FAILED"
    assert [t.payment_order_id for t in uows.store.transitions] == ["po-5"]
    assert len(uows.store.outbox) == 1  # the settlement event travels with the move
