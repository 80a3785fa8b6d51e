"""A refund after a pay-out: the buyer is refunded whatever the seller's balance; what the seller's wallet
does not hold becomes their debt (``asset:seller_receivable``), and the next pay-out nets it off first."""

from __future__ import annotations

from datetime import UTC, datetime

from svckit.gen.payments.v1 import payout_service_pb2 as pb
from tests.payments.books import posted_for
from tests.payouts.conftest import PayoutStack, eventually, uid


def _item(run: pb.PayoutRun, seller: str) -> pb.PayoutRunItem:
    (item,) = [i for i in run.items if i.seller_account == seller]
    return item


async def test_a_refund_beyond_the_balance_is_a_debt_the_next_payout_nets_off(stack: PayoutStack, services):
    seller = uid("s-debt")
    payable, receivable = f"liability:seller_payable:{seller}/USD", f"asset:seller_receivable:{seller}/USD"
    await stack.register(seller)
    order = await stack.sell(seller, 10_000)  # owed 9000
    first = _item(await stack.pay_period("2026-10", [seller]), seller)
    assert first.amount.amount_minor == 9_000
    sent = (await stack.payout(first.payout_id)).payout
    stack.sim.admin.advance(days=2)
    (paid,) = stack.payout_events(sent.psp_account, sent.psp_payout_id)
    assert (await stack.deliver(paid)).applied
    assert await stack.available(seller) == (0, 0)

    # The buyer gets 3000 back from an order paid out already: the seller's share of it, 2700, is
    # owed by the seller now; the wallet and the payable account stay at zero, never below.
    await stack.refund(order, 3_000)
    assert await eventually(lambda: stack.balance(receivable), lambda b: b == 2_700, "debt booked") == 2_700
    assert await stack.available(seller) == (0, 0)
    assert await stack.balance(payable) == 0
    assert await stack.verify_ledger() == []

    preview = (await stack.payouts.PreviewPayoutRun(pb.PreviewPayoutRunRequest(period="2026-11"))).run
    assert _item(preview, seller).skip_reason == pb.SKIP_REASON_NEGATIVE_BALANCE
    assert "2700" in _item(preview, seller).detail

    await stack.sell(seller, 5_000)  # owed 4500: the debt first, then 1800 paid
    second = _item(await stack.pay_period("2026-11", [seller]), seller)
    assert (second.amount.amount_minor, second.skip_reason) == (1_800, pb.SKIP_REASON_UNSPECIFIED)
    assert await stack.balance(receivable) == 0
    assert await stack.available(seller) == (0, 1_800)  # the 1800 reserved for the pay-out in transit
    assert await stack.balance(payable) == 0  # still the wallet's available balance
    assert await posted_for(services, [second.payout_id]) == {
        payable: 2_700 + 1_800,
        receivable: -2_700,
        "liability:payouts_in_transit/USD": -1_800,
    }
    assert await stack.verify_ledger() == []

    month = datetime.now(UTC).strftime("%Y-%m")
    st = await stack.payouts.GetStatement(pb.GetStatementRequest(seller_account=seller, period=month))
    assert st.debts_netted.amount_minor == -2_700
    assert sorted((line.kind, line.amount.amount_minor) for line in st.lines) == [
        ("debt_netted", -2_700),
        ("order", 4_500),
        ("order", 9_000),
        ("payout", -9_000),
        ("payout", -1_800),
    ]
    assert st.closing_balance.amount_minor == 0
