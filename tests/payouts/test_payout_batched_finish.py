"""The batched pay-out paths book exactly what the single calls book, under the same keys: a chunk's
reservations in one wallet ApplyBatch, and the payout.paid answers that arrive together captured in one
ApplyBatch and posted in one PostTransactions. Either path replays the other, so a pay-out a crash
left half way is finished by whichever comes next, once."""

from __future__ import annotations

import asyncio

import sqlalchemy as sa

from payment_svc.payouts.books import Books
from svckit.errors import FailedPrecondition
from svckit.gen.common.v1 import money_pb2
from svckit.gen.ledger.v1 import ledger_service_pb2 as lpb
from svckit.gen.payments.v1 import payout_service_pb2 as pb
from svckit.gen.wallet.v1 import wallet_service_pb2 as wpb
from tests.payouts.conftest import PayoutStack, uid


async def owed(stack: PayoutStack, seller: str, amount: int) -> None:
    """The seller is owed ``amount`` in the wallet and in the ledger (as a settled order leaves it)."""
    await stack.wallet.Credit(
        wpb.CreditRequest(
            seller_id=seller,
            amount=money_pb2.Money(amount_minor=amount, currency="USD"),
            reference=wpb.Reference(kind=wpb.REFERENCE_KIND_PAYMENT_ORDER, id=uid("ord")),
        ),
        metadata=(("idempotency-key", uid("k")),),
    )
    await stack.ledger.PostTransaction(
        lpb.PostTransactionRequest(
            entries=[
                lpb.Entry(
                    account="asset:psp_receivable:stripe/USD",
                    direction=lpb.DIRECTION_DEBIT,
                    amount_minor=amount,
                    currency="USD",
                ),
                lpb.Entry(
                    account=f"liability:seller_payable:{seller}/USD",
                    direction=lpb.DIRECTION_CREDIT,
                    amount_minor=amount,
                    currency="USD",
                ),
            ],
            description="owed",
            external_ref=seller,
        ),
        metadata=(("idempotency-key", uid("k")),),
    )


def shape(tx: lpb.Transaction, payout_id: str) -> tuple:
    """What a posting books, with its pay-out's id taken out (to compare two pay-outs' postings)."""
    return (
        sorted((e.account, e.direction, e.amount_minor, e.currency) for e in tx.entries),
        tx.description.replace(payout_id, "P"),
        tx.external_ref.replace(payout_id, "P"),
        dict(tx.metadata) | {"reference": "P"},
    )


async def test_batched_reservations_and_paid_book_exactly_what_the_single_calls_book(stack: PayoutStack):
    books = Books(stack.wallet, stack.ledger, 10.0)
    single, batched, poor = uid("s-single"), uid("s-batched"), uid("s-poor")
    for seller, amount in ((single, 500), (batched, 500), (poor, 100)):
        await owed(stack, seller, amount)
    p_single, p_batched, p_poor = uid("pyo"), uid("pyo"), uid("pyo")

    reserved = await books.reserve_many(
        [(p_single, single, 300, "USD"), (p_batched, batched, 300, "USD"), (p_poor, poor, 300, "USD")]
    )
    r_single, r_batched, refused = reserved
    assert isinstance(r_single, str) and isinstance(r_batched, str)
    # More than the seller has: refused for that pay-out only, nothing moved.
    assert isinstance(refused, FailedPrecondition) and refused.reason == "INSUFFICIENT_FUNDS"
    assert await stack.available(poor) == (100, 0)
    # The single Reserve under the pay-out's key answers the reservation the batch made.
    assert await books.reserve(p_single, single, 300, "USD") == r_single
    assert await books.reserve(p_batched, batched, 300, "USD") == r_batched
    for payout_id, seller in ((p_single, single), (p_batched, batched)):
        await books.post_sent(payout_id, seller, 300, "USD")

    # One pay-out paid by the single calls, the other by the batch.
    await books.capture(p_single, r_single)
    tx_single = await books.post_paid(p_single, 300, "USD")
    (tx_batched,) = await books.paid_many([(p_batched, r_batched, 300, "USD")])
    assert isinstance(tx_batched, int)

    # Each path replays the other under the same keys: nothing is captured or posted twice.
    assert await books.paid_many([(p_single, r_single, 300, "USD")]) == [tx_single]
    await books.capture(p_batched, r_batched)
    assert await books.post_paid(p_batched, 300, "USD") == tx_batched

    # The same books either way.
    for seller in (single, batched):
        assert await stack.available(seller) == (200, 0)
        assert await stack.balance(f"liability:seller_payable:{seller}/USD") == 200
    assert shape(await books.transaction(tx_single), p_single) == shape(
        await books.transaction(tx_batched), p_batched
    )
    for seller, payout_id in ((single, p_single), (batched, p_batched)):
        movements = (
            await stack.wallet.ListMovements(wpb.ListMovementsRequest(seller_id=seller, currency="USD"))
        ).movements
        assert [(m.kind, m.amount.amount_minor, m.idempotency_key) for m in movements] == [
            (wpb.MOVEMENT_KIND_CAPTURE, 300, f"payout:{payout_id}:capture"),
            (wpb.MOVEMENT_KIND_RESERVE, 300, f"payout:{payout_id}:reserve"),
            (wpb.MOVEMENT_KIND_CREDIT, 500, movements[2].idempotency_key),
        ]
    assert await stack.verify_ledger() == []


async def test_paid_answers_delivered_together_finish_each_payout_once(stack: PayoutStack):
    sellers = [uid("s-together") for _ in range(4)]
    for seller in sellers:
        await stack.register(seller)
        await stack.sell(seller, 1_000)  # owed 900
    run = await stack.pay(sellers)
    sent = [(await stack.payout(i.payout_id)).payout for i in run.items if i.seller_account in sellers]
    assert len(sent) == 4
    stack.sim.admin.advance(days=2)
    events = [stack.payout_events(p.psp_account, p.psp_payout_id)[0] for p in sent]
    before = await stack.balance("liability:payouts_in_transit/USD")

    # All at once, one of them twice (a redelivery racing the first delivery: the inbox records it
    # once) and another as a second event of the same payout.
    second = dict(events[1], id=f"{events[1]['id']}_2")
    answers = await asyncio.gather(*(stack.deliver(e) for e in [*events, events[0], second]))
    assert all(a.accepted and not a.applied for a in answers), answers
    outcomes = [await stack.outcome(e["id"]) for e in [*events, second]]
    assert outcomes[0] == outcomes[2] == outcomes[3] == "APPLIED"
    # Two events about one payout: the earlier applies it, the other changes nothing.
    assert sorted(outcomes[1::3]) == ["APPLIED", "NO_CHANGE"]
    async with stack.handle.engine.connect() as conn:
        recorded = await conn.scalar(
            sa.text("SELECT count(*) FROM payout_inbox WHERE event_id = :e"), {"e": events[0]["id"]}
        )
    assert recorded == 1
    for e in events:  # a later event about a paid pay-out changes nothing
        assert await stack.settle(dict(e, id=f"{e['id']}_later")) == "NO_CHANGE"

    for p in sent:
        got = await stack.payout(p.payout_id)
        assert got.payout.state == pb.PAYOUT_STATE_PAID
        assert await stack.available(p.seller_account) == (0, 0)
        assert await stack.balance(f"liability:seller_payable:{p.seller_account}/USD") == 0
    assert await stack.balance("liability:payouts_in_transit/USD") == before - 4 * 900
    assert await stack.verify_ledger() == []
