"""The payment service's unit of work on PostgreSQL: what each kind commits, and the one place a taken
id becomes a typed error (whichever kind of unit of work the statement ran in)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import psycopg
import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from payment_svc.uow import CheckoutIdTaken, PaymentOrderIdTaken, PgUnitsOfWork
from svckit.db import DriverPool

# Far enough that no janitor pass of another test on this database ever picks these orders up.
NEVER = datetime(2999, 1, 1, tzinfo=UTC)


def _checkout(checkout_id: str) -> dict:
    return {
        "checkout_id": checkout_id,
        "buyer_id": "uow-buyer",
        "buyer_info": {"buyer_id": "uow-buyer"},
        "mode": "DIRECT",
        "currency": "EUR",
        "total_minor": 500,
        "success_url": "",
        "cancel_url": "",
        "payment_method": "pm_card_visa",
        "idempotency_key": f"k-{checkout_id}",
        "fingerprint": b"fp",
        "risk_verdict": "APPROVE",
        "risk_rule": "",
    }


@pytest.fixture
async def uows(pay):
    url = pay.handle.engine.url.render_as_string(hide_password=False)
    units = PgUnitsOfWork(pay.handle.engine, DriverPool(url, max_size=2, name="uow-test"))
    yield units
    await units.close()


async def test_a_taken_checkout_or_order_id_is_a_typed_error_in_every_kind_of_unit_of_work(uows):
    run = uuid.uuid4().hex[:8]
    first, order = f"co_uow_{run}", f"po_uow_{run}"
    async with uows.statement() as uow:
        event, orders = await uow.repo.insert_checkout(
            _checkout(first), [(order, "uow-seller", 500, [])], NEVER
        )
    assert (event.checkout_id, [o.payment_order_id for o in orders]) == (first, [order])
    assert (orders[0].state, orders[0].amount_minor, orders[0].currency) == ("NOT_STARTED", 500, "EUR")
    for kind in (uows.statement, uows.transaction):
        with pytest.raises(CheckoutIdTaken):
            async with kind() as uow:
                await uow.repo.insert_checkout(_checkout(first), [(f"{order}-x", "s", 1, [])], NEVER)
        with pytest.raises(PaymentOrderIdTaken):
            async with kind() as uow:
                await uow.repo.insert_checkout(_checkout(f"{first}-y"), [(order, "s", 1, [])], NEVER)
    async with uows.reader() as uow:
        assert await uow.repo.get_event(f"{first}-y") is None  # nothing of a refused statement stays
        assert await uow.repo.get_order(f"{order}-x") is None


async def test_a_uniqueness_no_use_case_answers_for_is_not_translated(uows):
    run = uuid.uuid4().hex[:8]
    async with uows.statement() as uow:
        for i in (1, 2):
            await uow.repo.insert_checkout(
                _checkout(f"co_uows_{run}_{i}"), [(f"po_uows_{run}_{i}", "s", 1, [])], NEVER
            )
    with pytest.raises(IntegrityError) as exc:
        async with uows.transaction() as uow:
            for i in (1, 2):  # the session id is unique too, but no use case stores one twice
                await uow.repo.update_event(f"co_uows_{run}_{i}", psp_session_id=f"cs_{run}")
    assert isinstance(exc.value.orig, psycopg.errors.UniqueViolation)


async def test_a_transaction_that_raises_keeps_nothing_and_a_joined_one_commits_with_its_owner(pay, uows):
    run = uuid.uuid4().hex[:8]
    with pytest.raises(RuntimeError):
        async with uows.transaction() as uow:
            await uow.repo.insert_checkout(
                _checkout(f"co_uowt_{run}"), [(f"po_uowt_{run}", "s", 1, [])], NEVER
            )
            raise RuntimeError("the use case failed after its statement")
    async with uows.reader() as uow:
        assert await uow.repo.get_event(f"co_uowt_{run}") is None
    async with pay.handle.engine.begin() as conn:
        joined = PgUnitsOfWork.joined(conn)
        await joined.repo.insert_checkout(
            _checkout(f"co_uowj_{run}"), [(f"po_uowj_{run}", "s", 1, [])], NEVER
        )
        await joined.add_event(
            stream="uow-test", aggregate_id=f"po_uowj_{run}", type="test", payload={"n": 1}
        )
    async with pay.handle.engine.connect() as conn:
        events = await conn.scalar(
            sa.text("SELECT count(*) FROM event_outbox WHERE aggregate_id = :a"), {"a": f"po_uowj_{run}"}
        )
    async with uows.reader() as uow:
        assert (await uow.repo.get_order(f"po_uowj_{run}")) is not None
    assert events == 1
