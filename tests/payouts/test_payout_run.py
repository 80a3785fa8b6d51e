"""A month of sales paid out: exact amounts per seller, reasons for those not paid, the PSP's answer
captured in the books, and a statement that agrees with the ledger."""

from __future__ import annotations

from datetime import UTC, datetime

from svckit.gen.payments.v1 import payout_service_pb2 as pb
from svckit.gen.wallet.v1 import wallet_service_pb2 as wpb
from tests.payments.books import posted_for
from tests.payouts.conftest import PERIOD, PayoutStack, eventually, key, uid

IN_TRANSIT = "liability:payouts_in_transit/USD"
BANK = "asset:bank:operating/USD"


def _items(run: pb.PayoutRun) -> dict[str, pb.PayoutRunItem]:
    return {i.seller_account: i for i in run.items}


async def test_three_sellers_paid_exactly_books_and_statement_agree(stack: PayoutStack, services):
    paid, small, paused = uid("s-paid"), uid("s-small"), uid("s-paused")
    await stack.register(paid)
    await stack.register(small, minimum=5000)
    await stack.register(paused)
    await stack.payouts.PauseSeller(
        pb.PauseSellerRequest(seller_account=paused, reason="KYC review"), metadata=key()
    )
    first = await stack.sell(paid, 10_000)  # 10 % commission: the seller is owed 9000
    await stack.sell(paid, 5_000)  # 4500
    await stack.sell(small, 2_000)  # 1800: below its minimum of 5000
    await stack.sell(paused, 3_000)  # 2700, but paused

    preview = (await stack.payouts.PreviewPayoutRun(pb.PreviewPayoutRunRequest(period=PERIOD))).run
    mine = {s: i for s, i in _items(preview).items() if s in (paid, small, paused)}
    assert (mine[paid].amount.amount_minor, mine[paid].skip_reason) == (13_500, pb.SKIP_REASON_UNSPECIFIED)
    assert mine[small].skip_reason == pb.SKIP_REASON_BELOW_MINIMUM
    assert mine[paused].skip_reason == pb.SKIP_REASON_PAUSED
    assert await stack.available(paid) == (13_500, 0)  # a preview moves nothing

    run = await stack.pay([paid, small, paused])
    items = _items(run)
    assert (run.sellers_total, run.payouts_created, run.sellers_skipped) == (3, 1, 2)
    assert items[paid].amount.amount_minor == 13_500 and items[paid].payout_id
    assert items[small].skip_reason == pb.SKIP_REASON_BELOW_MINIMUM and not items[small].payout_id
    assert items[paused].skip_reason == pb.SKIP_REASON_PAUSED

    sent = (await stack.payout(items[paid].payout_id)).payout
    assert sent.state == pb.PAYOUT_STATE_IN_TRANSIT
    assert sent.psp_transfer_id.startswith("tr_") and sent.psp_payout_id.startswith("po_")
    assert await stack.available(paid) == (0, 13_500)
    assert await stack.balance(f"liability:seller_payable:{paid}/USD") == 0
    assert await posted_for(services, [sent.payout_id]) == {
        f"liability:seller_payable:{paid}/USD": 13_500,
        IN_TRANSIT: -13_500,
    }
    # The PSP holds what we sent: one transfer and one payout, each carrying our id.
    client = stack.sim.client(max_network_retries=0)
    transfer = client.v1.transfers.retrieve(sent.psp_transfer_id)
    assert (transfer.amount, transfer.destination, transfer.metadata["payout_id"]) == (
        13_500,
        sent.psp_account,
        sent.payout_id,
    )
    psp_payout = client.v1.payouts.retrieve(sent.psp_payout_id, options={"stripe_account": sent.psp_account})
    assert (psp_payout.amount, psp_payout.metadata["payout_id"]) == (13_500, sent.payout_id)

    stack.sim.admin.advance(days=2)  # the bank pays it
    (event,) = stack.payout_events(sent.psp_account, sent.psp_payout_id)
    assert event["type"] == "payout.paid"
    assert await stack.settle(event) == "APPLIED"
    event_again = dict(event, id=f"{event['id']}_redelivered")  # the PSP sends it twice (new event id)
    assert await stack.settle(event_again) == "NO_CHANGE"

    done = await stack.payout(sent.payout_id)
    assert done.payout.state == pb.PAYOUT_STATE_PAID
    assert [t.to_state for t in done.history] == [
        pb.PAYOUT_STATE_CREATED,
        pb.PAYOUT_STATE_RESERVED,
        pb.PAYOUT_STATE_TRANSFERRED,
        pb.PAYOUT_STATE_IN_TRANSIT,
        pb.PAYOUT_STATE_PAID,
    ]
    assert await stack.available(paid) == (0, 0)
    assert await posted_for(services, [sent.payout_id]) == {
        f"liability:seller_payable:{paid}/USD": 13_500,
        IN_TRANSIT: 0,
        BANK: -13_500,
    }
    movements = (
        await stack.wallet.ListMovements(wpb.ListMovementsRequest(seller_id=paid, currency="USD"))
    ).movements
    assert [m.kind for m in movements][:2] == [wpb.MOVEMENT_KIND_CAPTURE, wpb.MOVEMENT_KIND_RESERVE]

    # After the pay-out: one more sale, and a refund of an order already paid out (from what is left).
    await stack.sell(paid, 4_000)  # 3600
    await stack.refund(first, 1_000)  # the seller gives back 900
    payable = f"liability:seller_payable:{paid}/USD"

    async def books() -> tuple[tuple[int, int], int]:
        return await stack.available(paid), await stack.balance(payable)

    # The refund's settlement debits the wallet, then posts to the ledger: wait for both halves.
    settled = await eventually(books, lambda b: b == ((2_700, 0), 2_700), "refund settled")
    assert settled == ((2_700, 0), 2_700)  # the wallet equals the ledger
    assert await stack.verify_ledger() == []

    month = datetime.now(UTC).strftime("%Y-%m")
    st = await stack.payouts.GetStatement(pb.GetStatementRequest(seller_account=paid, period=month))
    assert (st.opening_balance.amount_minor, st.closing_balance.amount_minor) == (0, 2_700)
    assert st.orders_gross.amount_minor == 19_000 and st.commission.amount_minor == 1_900
    assert st.refunds.amount_minor == -900 and st.payouts.amount_minor == -13_500
    lines = sorted((line.kind, line.amount.amount_minor) for line in st.lines)
    assert lines == [
        ("order", 3_600),
        ("order", 4_500),
        ("order", 9_000),
        ("payout", -13_500),
        ("refund", -900),
    ]
    assert st.opening_balance.amount_minor + sum(line.amount.amount_minor for line in st.lines) == 2_700
    (payout_line,) = [line for line in st.lines if line.kind == "payout"]
    assert (payout_line.psp_transfer_id, payout_line.psp_payout_id) == (
        sent.psp_transfer_id,
        sent.psp_payout_id,
    )


async def test_the_rolling_reserve_holds_its_share_and_sellers_without_psp_account_or_payouts_wait(
    stack: PayoutStack,
):
    reserved, all_held, no_account = uid("s-rsv"), uid("s-rsv-all"), uid("s-noacct")
    disabled = uid("s-nopayouts")
    await stack.register(reserved, reserve_bps=1_000, reserve_days=30)  # 10 % of recent net held
    await stack.register(all_held, reserve_bps=10_000, reserve_days=30)
    await stack.payouts.RegisterSeller(
        pb.RegisterSellerRequest(seller=pb.Seller(seller_account=no_account, payout_currency="USD")),
        metadata=key(),
    )
    # The simulator's convention for an account whose payouts are off (docs/psp_sim.md).
    await stack.payouts.RegisterSeller(
        pb.RegisterSellerRequest(
            seller=pb.Seller(seller_account=disabled, payout_currency="USD"),
            create_psp_account=True,
            email="shop+payouts_disabled@example.com",
        ),
        metadata=key(),
    )
    await stack.sell(reserved, 10_000)  # net 9000: 900 held
    await stack.sell(all_held, 10_000)
    await stack.sell(no_account, 10_000)
    await stack.sell(disabled, 10_000)
    # The preview of this one seller: a dry run (PreviewPayoutRun looks at every seller of the period).
    preview = await stack.finished((await stack.start_run(sellers=[disabled], dry_run=True)).run_id)
    (line,) = preview.items
    assert line.skip_reason == pb.SKIP_REASON_PAYOUTS_NOT_ENABLED and line.amount.amount_minor == 0

    run = await stack.pay([reserved, all_held, no_account, disabled])
    items = _items(run)
    assert items[disabled].skip_reason == pb.SKIP_REASON_PAYOUTS_NOT_ENABLED and not items[disabled].payout_id
    assert await stack.available(disabled) == (9_000, 0)  # not paid: it waits in the wallet
    assert (items[reserved].amount.amount_minor, items[reserved].reserve_held.amount_minor) == (8_100, 900)
    assert items[all_held].skip_reason == pb.SKIP_REASON_RESERVE
    assert items[all_held].reserve_held.amount_minor == 9_000
    assert items[no_account].skip_reason == pb.SKIP_REASON_NO_PSP_ACCOUNT
    assert await stack.available(reserved) == (900, 8_100)
    assert await stack.available(no_account) == (9_000, 0)  # waits in the wallet
