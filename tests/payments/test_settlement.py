"""After SUCCESS, money reaches the seller's wallet and the ledger through the event backbone."""

from __future__ import annotations

import asyncio
import uuid

import pytest
import sqlalchemy as sa

from svckit.gen.ledger.v1 import ledger_service_pb2 as lpb
from svckit.gen.ledger.v1 import ledger_service_pb2_grpc as lpb_grpc
from svckit.gen.payments.v1 import payment_service_pb2 as pb
from svckit.gen.wallet.v1 import wallet_service_pb2 as wpb
from svckit.gen.wallet.v1 import wallet_service_pb2_grpc as wpb_grpc
from tests.payments.books import balance as _balance
from tests.payments.books import posted_for as _posted_for


def _md() -> list[tuple[str, str]]:
    return [("idempotency-key", uuid.uuid4().hex)]


def _checkout(sellers: list[str], amounts: list[int], pm: str = "pm_card_visa") -> pb.CreatePaymentRequest:
    run = uuid.uuid4().hex[:8]
    return pb.CreatePaymentRequest(
        checkout_id=f"co_{run}",
        buyer=pb.BuyerInfo(buyer_id=f"buyer-settle-{run}"),
        payment_orders=[
            pb.PaymentOrderInput(
                payment_order_id=f"po_{run}_{i}", seller_account=s, amount_minor=a, currency="USD"
            )
            for i, (s, a) in enumerate(zip(sellers, amounts, strict=True))
        ],
        payment_method=pm,
    )


async def _settled(pay, order_ids: list[str], within_seconds: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + within_seconds
    while True:
        async with pay.handle.engine.connect() as conn:
            done = await conn.scalar(
                sa.text(
                    "SELECT count(*) FROM payment_orders WHERE payment_order_id = ANY(:ids)"
                    " AND wallet_updated AND ledger_updated"
                ),
                {"ids": order_ids},
            )
        if done == len(order_ids):
            return
        assert asyncio.get_running_loop().time() < deadline, f"only {done}/{len(order_ids)} settled"
        await asyncio.sleep(0.1)


async def _wallet(channels, seller: str) -> int:
    stub = wpb_grpc.WalletServiceStub(channels["wallet"])
    reply = await stub.GetWallet(wpb.GetWalletRequest(seller_id=seller, currency="USD"))
    return reply.wallet.available.amount_minor


async def test_three_sellers_are_credited_net_of_commission_and_the_ledger_balances(pay, channels, services):
    run = uuid.uuid4().hex[:6]
    sellers = [f"s-{run}-a", f"s-{run}-b", "seller-low-fee"]
    low_fee_before = await _wallet(channels, "seller-low-fee")
    reply = await pay.stub.CreatePayment(_checkout(sellers, [1000, 2550, 4000]), metadata=_md())
    orders = reply.payment_event.payment_orders
    await _settled(pay, [o.payment_order_id for o in orders])

    assert await _wallet(channels, sellers[0]) == 900
    assert await _wallet(channels, sellers[1]) == 2295
    assert await _wallet(channels, "seller-low-fee") - low_fee_before == 3900  # 2.5 % override
    for seller in sellers[:2]:
        assert await _balance(channels, f"liability:seller_payable:{seller}/USD") == await _wallet(
            channels, seller
        )
    posted = await _posted_for(services, [o.payment_order_id for o in orders])
    assert posted["asset:psp_receivable:stripe/USD"] == 7550
    assert posted["revenue:commission/USD"] == -(100 + 255 + 100)  # a credit
    assert sum(posted.values()) == 0
    verify = await lpb_grpc.LedgerServiceStub(channels["ledger"]).VerifyLedger(lpb.VerifyLedgerRequest())
    assert verify.ok, list(verify.findings)


async def test_refunds_debit_the_wallet_and_post_the_mirror_image(pay, channels):
    seller = f"s-{uuid.uuid4().hex[:6]}"
    reply = await pay.stub.CreatePayment(_checkout([seller], [1000]), metadata=_md())
    order_id = reply.payment_event.payment_orders[0].payment_order_id
    await _settled(pay, [order_id])
    assert await _wallet(channels, seller) == 900
    await pay.stub.CreateRefund(
        pb.CreateRefundRequest(payment_order_id=order_id, amount_minor=333), metadata=_md()
    )
    await pay.stub.CreateRefund(pb.CreateRefundRequest(payment_order_id=order_id), metadata=_md())
    # The whole commission comes back with a full refund, whatever the partial steps rounded to.
    async with pay.handle.engine.connect() as conn:
        given_back = (
            (
                await conn.execute(
                    sa.text(
                        "SELECT payload FROM event_outbox WHERE aggregate_id = :o AND type = 'payment.refund.succeeded'"
                    ),
                    {"o": order_id},
                )
            )
            .scalars()
            .all()
        )
    assert sorted(p["amount_minor"] for p in given_back) == [333, 667]
    assert sum(p["commission_minor"] for p in given_back) == 100
    deadline = asyncio.get_running_loop().time() + 20
    while await _wallet(channels, seller) != 0:
        assert asyncio.get_running_loop().time() < deadline, "refunds were not settled into the wallet"
        await asyncio.sleep(0.1)
    while await _balance(channels, f"liability:seller_payable:{seller}/USD") != 0:
        assert asyncio.get_running_loop().time() < deadline, "refunds were not posted to the ledger"
        await asyncio.sleep(0.1)


async def test_a_refund_the_wallet_cannot_cover_takes_what_is_there_and_books_the_rest_as_debt(pay, channels):
    seller = f"s-{uuid.uuid4().hex[:6]}"
    reply = await pay.stub.CreatePayment(_checkout([seller], [1000]), metadata=_md())
    order_id = reply.payment_event.payment_orders[0].payment_order_id
    await _settled(pay, [order_id])
    # Most of the seller's money already left the wallet (a payout, say).
    wallet = wpb_grpc.WalletServiceStub(channels["wallet"])
    await wallet.Debit(
        wpb.DebitRequest(
            seller_id=seller,
            amount={"amount_minor": 700, "currency": "USD"},
            reference=wpb.Reference(kind=wpb.REFERENCE_KIND_ADJUSTMENT, id=f"adj-{order_id}"),
        ),
        metadata=_md(),
    )
    await pay.stub.CreateRefund(pb.CreateRefundRequest(payment_order_id=order_id), metadata=_md())
    deadline = asyncio.get_running_loop().time() + 20
    while await _balance(channels, f"asset:seller_receivable:{seller}/USD") != 700:
        assert asyncio.get_running_loop().time() < deadline, "the refund's shortfall was not booked as debt"
        await asyncio.sleep(0.1)
    assert await _wallet(channels, seller) == 0  # the 200 it held, never below zero
    # The adjustment above was the wallet's alone, so the payable account still held 900: less the
    # 200 taken. The rest of the refund is the seller's debt, in its own account.
    assert await _balance(channels, f"liability:seller_payable:{seller}/USD") == 900 - 200
    verify = await lpb_grpc.LedgerServiceStub(channels["ledger"]).VerifyLedger(lpb.VerifyLedgerRequest())
    assert verify.ok, list(verify.findings)


async def test_a_batch_settles_with_one_call_each_and_a_refund_sends_it_one_by_one(pay, channels):
    from payment_svc.bootstrap import build_settlement_handler
    from payment_svc.settlement import ORDER_SUCCEEDED, REFUND_SUCCEEDED
    from svckit.events import Event

    run = uuid.uuid4().hex[:6]
    sellers = [f"sb-{run}-{i}" for i in range(3)]

    def order_event(i: int) -> Event:
        payload = {
            "payment_order_id": f"po_b_{run}_{i}",
            "checkout_id": f"co_b_{run}",
            "seller_account": sellers[i],
            "amount_minor": 1000 + i,
            "commission_minor": 100,
            "currency": "USD",
        }
        return Event(f"e-{run}-{i}", ORDER_SUCCEEDED, payload["payment_order_id"], payload, "")

    handler = build_settlement_handler(
        wpb_grpc.WalletServiceStub(channels["wallet"]),
        lpb_grpc.LedgerServiceStub(channels["ledger"]),
        pay.handle.engine,
        10,
    )
    batch = [order_event(i) for i in range(3)]
    async with pay.handle.engine.begin() as conn:
        await handler(conn, batch)
    assert [await _wallet(channels, s) for s in sellers] == [900, 901, 902]
    async with pay.handle.engine.begin() as conn:  # a redelivered batch replays, changes nothing
        await handler(conn, batch)
    assert [await _wallet(channels, s) for s in sellers] == [900, 901, 902]

    # A refund the wallet cannot cover, next to a new credit: the batch goes one by one...
    too_big = {
        "refund_id": f"rf_b_{run}",
        "payment_order_id": f"po_b_{run}_0",
        "seller_account": sellers[0],
        "amount_minor": 5000,
        "commission_minor": 0,
        "currency": "USD",
    }
    mixed = [Event(f"e-{run}-r", REFUND_SUCCEEDED, too_big["payment_order_id"], too_big, "")]
    fresh = {**batch[1].payload, "payment_order_id": f"po_b_{run}_9", "amount_minor": 2000}
    mixed.append(Event(f"e-{run}-9", ORDER_SUCCEEDED, fresh["payment_order_id"], fresh, ""))
    with pytest.raises(Exception, match="settle one by one"):
        async with pay.handle.engine.begin() as conn:
            await handler(conn, mixed)
    # ...where the credit completes and the refund takes the wallet's 900, the rest the seller's debt.
    async with pay.handle.engine.begin() as conn:
        await handler(conn, [mixed[1]])
    async with pay.handle.engine.begin() as conn:
        await handler(conn, [mixed[0]])
    assert [await _wallet(channels, s) for s in sellers] == [0, 901 + 1900, 902]
    ledger = lpb_grpc.LedgerServiceStub(channels["ledger"])
    payable = await ledger.GetBalance(
        lpb.GetBalanceRequest(account=f"liability:seller_payable:{sellers[1]}/USD")
    )
    assert payable.balance_minor == 901 + 1900  # ledger posted once per credit
    debt = await ledger.GetBalance(lpb.GetBalanceRequest(account=f"asset:seller_receivable:{sellers[0]}/USD"))
    assert debt.balance_minor == 5000 - 900


async def test_a_refund_settled_before_its_orders_credit_is_retried_not_dead_lettered(pay, channels):
    """Chaos seed 2 (docs/reliability.md): the order's credit failed transiently and went to the retry
    channel; its refund's debit came next and found the wallet empty. That is not a refusal on the
    merits: the refund must wait for the credit, not be dead-lettered."""
    from payment_svc.bootstrap import build_settlement_handler
    from payment_svc.settlement import REFUND_SUCCEEDED
    from svckit.events import Event, Waiting

    seller = f"s-{uuid.uuid4().hex[:6]}"
    reply = await pay.stub.CreatePayment(_checkout([seller], [1000]), metadata=_md())
    order_id = reply.payment_event.payment_orders[0].payment_order_id
    await _settled(pay, [order_id])
    # As the books stand while the order's settlement waits in the retry channel.
    async with pay.handle.engine.begin() as conn:
        await conn.execute(
            sa.text(
                "UPDATE payment_orders SET wallet_updated = false, ledger_updated = false"
                " WHERE payment_order_id = :o"
            ),
            {"o": order_id},
        )
    refund = {
        "refund_id": f"rf_wait_{order_id}",
        "payment_order_id": order_id,
        "seller_account": seller,
        "amount_minor": 1000,
        "commission_minor": 100,
        "currency": "USD",
    }
    handler = build_settlement_handler(
        wpb_grpc.WalletServiceStub(channels["wallet"]),
        lpb_grpc.LedgerServiceStub(channels["ledger"]),
        pay.handle.engine,
        10,
    )
    # Waiting, not failing: it spends none of its attempts (chaos seed 4, where it ran out of them
    # while its order's credit was still being retried; tests/events covers the consumer's side).
    with pytest.raises(Waiting, match="not settled yet"):
        async with pay.handle.engine.begin() as conn:
            await handler(conn, [Event(f"e-wait-{order_id}", REFUND_SUCCEEDED, order_id, refund, "")])
    assert await _wallet(channels, seller) == 900  # nothing taken while it waits
