"""The pay-out inbox: HandlePspEvent records the PSP's payout.paid/failed/canceled once per event id and
answers; workers apply the recorded facts in groups, in the PSP's order, each fact once, also after a
crash between the books and the commit, and with several replicas applying at once."""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import json
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from prometheus_client import REGISTRY

from payment_svc import bootstrap
from payment_svc.payouts.books import Books
from payment_svc.payouts.events import PayoutAnswers
from payment_svc.payouts.inbox import PayoutInbox, fact_of
from payment_svc.psp_objects import PayoutView
from payment_svc.psp_objects import event as psp_event
from svckit.errors import DomainError, Unavailable
from svckit.gen.payments.v1 import payout_service_pb2 as pb
from svckit.gen.wallet.v1 import wallet_service_pb2 as wpb
from tests.payouts.conftest import PayoutStack, uid

IN_TRANSIT = "liability:payouts_in_transit/USD"


async def _sent(stack: PayoutStack, sellers: list[str], amount: int = 1_000) -> list[pb.Payout]:
    """Each seller sold ``amount`` (owed 90 %) and was paid out: the pay-outs in transit."""
    for seller in sellers:
        await stack.register(seller)
        await stack.sell(seller, amount)
    run = await stack.pay(sellers)
    return [(await stack.payout(i.payout_id)).payout for i in run.items if i.seller_account in sellers]


async def _record(stack: PayoutStack, event: dict[str, Any]) -> None:
    """Record an event in the inbox as HandlePspEvent does, without waking the server's worker (the
    test applies it)."""
    parsed = psp_event(event["type"], json.dumps(event).encode())
    assert isinstance(parsed.object, PayoutView)
    fact = fact_of(event["id"], parsed.object, parsed.created, f"psp_event:{event['type']} {event['id']}")
    assert fact is not None
    await stack.uses.inbox.record(fact)


async def _captures(stack: PayoutStack, seller: str) -> int:
    movements = (
        await stack.wallet.ListMovements(wpb.ListMovementsRequest(seller_id=seller, currency="USD"))
    ).movements
    return sum(1 for m in movements if m.kind == wpb.MOVEMENT_KIND_CAPTURE)


async def _paid_events(stack: PayoutStack, payout_id: str) -> int:
    async with stack.handle.engine.connect() as conn:
        return int(
            await conn.scalar(
                sa.text(
                    "SELECT count(*) FROM event_outbox WHERE aggregate_id = :p"
                    " AND payload::jsonb ->> 'state' = 'PAID'"
                ),
                {"p": payout_id},
            )
        )


async def test_a_duplicate_event_is_recorded_once_and_applied_once(stack: PayoutStack):
    seller = uid("s-dup")
    (sent,) = await _sent(stack, [seller])
    stack.sim.admin.advance(days=2)
    (paid,) = stack.payout_events(sent.psp_account, sent.psp_payout_id)

    answers = [await stack.deliver(paid) for _ in range(3)]  # the PSP retries a delivery
    assert all(a.accepted and not a.applied for a in answers)
    assert await stack.outcome(paid["id"]) == "APPLIED"
    async with stack.handle.engine.connect() as conn:
        assert (
            await conn.scalar(
                sa.text("SELECT count(*) FROM payout_inbox WHERE event_id = :e"), {"e": paid["id"]}
            )
            == 1
        )
    assert (await stack.payout(sent.payout_id)).payout.state == pb.PAYOUT_STATE_PAID
    assert await _captures(stack, seller) == 1
    assert await _paid_events(stack, sent.payout_id) == 1


class Crash(BaseException):
    """The process dies: nothing of ours catches it, the transaction is rolled back."""


class CrashAfterPosting(Books):
    """The books calls go through, then the process dies before its transaction commits."""

    async def post_paid(self, payout_id: str, amount: int, currency: str) -> int:
        await super().post_paid(payout_id, amount, currency)
        raise Crash()


async def test_a_crash_between_the_books_and_the_commit_is_applied_once_after_restart(
    stack: PayoutStack,
):
    seller = uid("s-crash")
    (sent,) = await _sent(stack, [seller], 2_000)  # owed 1800
    stack.sim.admin.advance(days=2)
    (paid,) = stack.payout_events(sent.psp_account, sent.psp_payout_id)
    in_transit = await stack.balance(IN_TRANSIT)
    await _record(stack, paid)

    deps = dataclasses.replace(stack.uses.deps, books=CrashAfterPosting(stack.wallet, stack.ledger, 10.0))
    dying = PayoutInbox(deps, PayoutAnswers(deps))
    try:
        await dying.drain()
        raise AssertionError("the injected crash did not happen")
    except Crash:
        pass
    # Captured and posted at the wallet and the ledger, but not recorded here: still to apply.
    assert await stack.uses.inbox.outcome(paid["id"]) is None
    assert (await stack.payout(sent.payout_id)).payout.state == pb.PAYOUT_STATE_IN_TRANSIT

    await stack.uses.inbox.drain()  # the restarted worker: the same keys replay the books' answers
    assert await stack.uses.inbox.outcome(paid["id"]) == "APPLIED"
    assert (await stack.payout(sent.payout_id)).payout.state == pb.PAYOUT_STATE_PAID
    assert await _captures(stack, seller) == 1
    assert await stack.available(seller) == (0, 0)
    assert await stack.balance(IN_TRANSIT) == in_transit - 1_800
    assert await _paid_events(stack, sent.payout_id) == 1
    assert await stack.verify_ledger() == []


async def test_paid_then_failed_recorded_together_apply_in_the_psps_order(stack: PayoutStack):
    seller = uid("s-order")
    (sent,) = await _sent(stack, [seller], 3_000)  # owed 2700
    stack.sim.admin.advance(days=2)
    (paid,) = stack.payout_events(sent.psp_account, sent.psp_payout_id)
    returned = copy.deepcopy(paid)
    returned.update(id=paid["id"] + "_returned", type="payout.failed")
    returned["data"]["object"].update(status="failed", failure_code="account_closed")
    # The failure arrives first, both with the PSP's same second: paid comes first all the same (a
    # payout can fail after it was paid, never be paid after it failed).
    await _record(stack, returned)
    await _record(stack, paid)

    await stack.uses.inbox.drain()

    assert await stack.uses.inbox.outcome(paid["id"]) == "APPLIED"
    assert await stack.uses.inbox.outcome(returned["id"]) == "APPLIED"
    back = await stack.payout(sent.payout_id)
    assert (back.payout.state, back.payout.failure_code) == (pb.PAYOUT_STATE_FAILED, "account_closed")
    assert [t.to_state for t in back.history][-2:] == [pb.PAYOUT_STATE_PAID, pb.PAYOUT_STATE_FAILED]
    assert await stack.available(seller) == (2_700, 0)
    assert await stack.balance(f"liability:seller_payable:{seller}/USD") == 2_700
    assert await stack.verify_ledger() == []


async def test_an_event_for_a_payout_that_is_not_ours_is_kept_and_alerted(stack: PayoutStack):
    seller = uid("s-stranger")
    (sent,) = await _sent(stack, [seller])
    stack.sim.admin.advance(days=2)
    (paid,) = stack.payout_events(sent.psp_account, sent.psp_payout_id)
    stranger = copy.deepcopy(paid)
    stranger["id"] = paid["id"] + "_stranger"
    stranger["data"]["object"].update(id=uid("po_unknown"), metadata={})
    labels = {"outcome": "UNKNOWN_PAYOUT"}
    before = REGISTRY.get_sample_value("payment_payout_inbox_applied_total", labels) or 0.0

    assert await stack.settle(stranger) == "UNKNOWN_PAYOUT"

    assert REGISTRY.get_sample_value("payment_payout_inbox_applied_total", labels) == before + 1
    async with stack.handle.engine.connect() as conn:
        kept = (
            await conn.execute(
                sa.text("SELECT psp_payout_id, status FROM payout_inbox WHERE event_id = :e"),
                {"e": stranger["id"]},
            )
        ).one()
    assert tuple(kept) == (stranger["data"]["object"]["id"], "paid")
    assert (await stack.payout(sent.payout_id)).payout.state == pb.PAYOUT_STATE_IN_TRANSIT


async def test_several_replicas_applying_at_once_apply_each_fact_once(stack: PayoutStack):
    sellers = [uid("s-replica") for _ in range(6)]
    sent = await _sent(stack, sellers)  # owed 900 each
    stack.sim.admin.advance(days=2)
    events = [stack.payout_events(p.psp_account, p.psp_payout_id)[0] for p in sent]
    in_transit = await stack.balance(IN_TRANSIT)
    for e in events:
        await _record(stack, e)
        await _record(stack, dict(e, id=e["id"] + "_again"))  # a second event about each payout

    settings = stack.uses.deps.settings.model_copy(update={"payout_inbox_batch_size": 2})
    replicas = [
        bootstrap.build_payouts(settings, stack.handle.engine, bootstrap.build_psp(settings))
        for _ in range(3)
    ]
    try:
        await asyncio.gather(*(r.inbox.drain() for r in replicas))
    finally:
        for r in replicas:
            await r.close()

    for e in events:
        assert await stack.uses.inbox.outcome(e["id"]) == "APPLIED"
        assert await stack.uses.inbox.outcome(e["id"] + "_again") == "NO_CHANGE"
    for p in sent:
        assert (await stack.payout(p.payout_id)).payout.state == pb.PAYOUT_STATE_PAID
        assert await _captures(stack, p.seller_account) == 1
        assert await _paid_events(stack, p.payout_id) == 1
    assert await stack.balance(IN_TRANSIT) == in_transit - 6 * 900
    assert await stack.verify_ledger() == []


class WalletDownFor(Books):
    """The wallet is unreachable for one pay-out's capture (alone or in a batch)."""

    def __init__(self, payout_id: str, *args: Any) -> None:
        super().__init__(*args)
        self._down = payout_id

    async def paid_many(self, paid: Sequence[tuple[str, str, int, str]]) -> list[int | DomainError]:
        if any(p[0] == self._down for p in paid):
            raise Unavailable("UPSTREAM_UNAVAILABLE", "the wallet is unreachable")
        return await super().paid_many(paid)

    async def capture(self, payout_id: str, reservation_id: str) -> None:
        if payout_id == self._down:
            raise Unavailable("UPSTREAM_UNAVAILABLE", "the wallet is unreachable")
        await super().capture(payout_id, reservation_id)


async def test_a_fault_in_a_group_defers_only_the_fact_it_hit(stack: PayoutStack):
    sellers = [uid("s-fault") for _ in range(3)]
    sent = await _sent(stack, sellers)  # owed 900 each
    stack.sim.admin.advance(days=2)
    events = [stack.payout_events(p.psp_account, p.psp_payout_id)[0] for p in sent]
    for e in events:
        await _record(stack, e)
    hit = sent[1]

    books = WalletDownFor(hit.payout_id, stack.wallet, stack.ledger, 10.0)
    deps = dataclasses.replace(stack.uses.deps, books=books)
    await PayoutInbox(deps, PayoutAnswers(deps)).drain()

    # The group failed as a whole, then each fact was tried alone: the others are paid.
    for p, e in zip(sent, events, strict=True):
        if p is not hit:
            assert await stack.uses.inbox.outcome(e["id"]) == "APPLIED"
            assert (await stack.payout(p.payout_id)).payout.state == pb.PAYOUT_STATE_PAID
    assert await stack.uses.inbox.outcome(events[1]["id"]) is None
    async with stack.handle.engine.begin() as conn:
        attempts, error = (
            await conn.execute(
                sa.text("SELECT attempts, last_error FROM payout_inbox WHERE event_id = :e"),
                {"e": events[1]["id"]},
            )
        ).one()
        assert attempts == 1 and "UPSTREAM_UNAVAILABLE" in error
        # Its retry comes due; the wallet is back.
        await conn.execute(
            sa.text("UPDATE payout_inbox SET next_try_at = now() WHERE event_id = :e"), {"e": events[1]["id"]}
        )
    await stack.uses.inbox.drain()
    assert await stack.uses.inbox.outcome(events[1]["id"]) == "APPLIED"
    assert (await stack.payout(hit.payout_id)).payout.state == pb.PAYOUT_STATE_PAID
    for p in sent:
        assert await _captures(stack, p.seller_account) == 1
    assert await stack.verify_ledger() == []


async def test_the_inbox_reports_its_depth_and_alerts_on_an_old_unapplied_fact(stack: PayoutStack):
    seller = uid("s-old")
    (sent,) = await _sent(stack, [seller])
    stack.sim.admin.advance(days=2)
    (paid,) = stack.payout_events(sent.psp_account, sent.psp_payout_id)
    await _record(stack, paid)
    # Recorded an hour ago and still not applied (no worker ran): past the alert age.
    async with stack.handle.engine.begin() as conn:
        await conn.execute(
            sa.text("UPDATE payout_inbox SET received_at = now() - interval '1 hour' WHERE event_id = :e"),
            {"e": paid["id"]},
        )
    alerts = REGISTRY.get_sample_value("payment_payout_inbox_stale_total") or 0.0

    depth, age = await stack.uses.inbox.observe()

    assert depth >= 1 and age >= 3600
    assert REGISTRY.get_sample_value("payment_payout_inbox_depth") == depth
    assert REGISTRY.get_sample_value("payment_payout_inbox_stale_total") == alerts + 1
    await stack.uses.inbox.drain()
    assert await stack.uses.inbox.outcome(paid["id"]) == "APPLIED"


async def test_applied_facts_are_deleted_after_the_retention_and_the_rest_are_kept(stack: PayoutStack):
    sellers = [uid("s-purge") for _ in range(2)]
    old, recent = await _sent(stack, sellers)
    stack.sim.admin.advance(days=2)
    (old_paid,) = stack.payout_events(old.psp_account, old.psp_payout_id)
    (recent_paid,) = stack.payout_events(recent.psp_account, recent.psp_payout_id)
    stranger = copy.deepcopy(old_paid)
    stranger["id"] = old_paid["id"] + "_stranger"
    stranger["data"]["object"].update(id=uid("po_unknown"), metadata={})
    waiting = copy.deepcopy(recent_paid)
    waiting["id"] = recent_paid["id"] + "_waiting"
    for event in (old_paid, recent_paid, stranger):
        await _record(stack, event)
    await stack.uses.inbox.drain()
    await _record(stack, waiting)  # recorded, not applied
    days = stack.uses.deps.settings.payout_inbox_retention_days
    ids = [old_paid["id"], stranger["id"], waiting["id"]]
    async with stack.handle.engine.begin() as conn:  # all but the recent one a retention period old
        await conn.execute(
            sa.text(
                "UPDATE payout_inbox SET received_at = now() - make_interval(days => :d + 1),"
                " applied_at = CASE WHEN outcome IS NULL THEN NULL ELSE now() - make_interval(days => :d + 1) END"
                " WHERE event_id = ANY(:ids)"
            ),
            {"d": days, "ids": ids},
        )

    assert await stack.uses.inbox.purge(batch=1) >= 1  # batches of one: the loop goes on until none is left

    async with stack.handle.engine.connect() as conn:
        left = set(
            (
                await conn.execute(
                    sa.text("SELECT event_id FROM payout_inbox WHERE event_id = ANY(:ids)"),
                    {"ids": [*ids, recent_paid["id"]]},
                )
            ).scalars()
        )
    # The old applied fact went; the recent one, the one kept for an operator and the unapplied one stay.
    assert left == {recent_paid["id"], stranger["id"], waiting["id"]}
    assert (await stack.payout(old.payout_id)).payout.state == pb.PAYOUT_STATE_PAID
    # A redelivery after the purge is recorded again and changes nothing.
    assert await stack.settle(old_paid) == "NO_CHANGE"
