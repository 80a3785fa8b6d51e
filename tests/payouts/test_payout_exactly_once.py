"""Exactly once: two runs of a period at once, a PSP answer lost on the way back, the janitor finishing
what a run left, and the PSP's final answer arriving twice, never, or paid then failed."""

from __future__ import annotations

import asyncio
import copy

import pytest
import stripe
from prometheus_client import REGISTRY

from svckit.gen.payments.v1 import payout_service_pb2 as pb
from tests.payments.books import posted_for
from tests.payouts.conftest import CLOSED_BANK, PayoutStack, key, uid

IN_TRANSIT = "liability:payouts_in_transit/USD"
BANK = "asset:bank:operating/USD"


def _transfers_to(stack: PayoutStack, account: str) -> list[stripe.Transfer]:
    client = stack.sim.client(max_network_retries=0)
    return list(client.v1.transfers.list(params={"destination": account, "limit": 100}).data)


def _psp_payouts(stack: PayoutStack, account: str) -> list[stripe.Payout]:
    client = stack.sim.client(max_network_retries=0)
    return list(client.v1.payouts.list(params={"limit": 100}, options={"stripe_account": account}).data)


def _failed_total() -> float:
    return REGISTRY.get_sample_value("payment_payouts_failed_total") or 0.0


async def _one_paid_out(stack: PayoutStack, amount: int = 5_000) -> tuple[str, pb.Payout]:
    seller = uid("s")
    await stack.register(seller)
    await stack.sell(seller, amount)
    run = await stack.pay([seller])
    (item,) = run.items
    return seller, (await stack.payout(item.payout_id)).payout


async def test_two_runs_of_one_period_at_once_pay_each_seller_once(stack: PayoutStack):
    sellers = [uid("s-twice") for _ in range(3)]
    for seller in sellers:
        await stack.register(seller)
        await stack.sell(seller, 2_000)  # owed 1800

    first, second = await asyncio.gather(stack.start_run(sellers=sellers), stack.start_run(sellers=sellers))
    runs = [await stack.finished(first.run_id), await stack.finished(second.run_id)]
    assert first.run_id != second.run_id
    assert sum(r.payouts_created for r in runs) == 3
    for seller in sellers:
        payouts = (await stack.payouts.ListPayouts(pb.ListPayoutsRequest(seller_account=seller))).payouts
        assert len(payouts) == 1 and payouts[0].amount.amount_minor == 1_800
        lines = [i for r in runs for i in r.items if i.seller_account == seller]
        assert sorted(i.skip_reason for i in lines) == [
            pb.SKIP_REASON_UNSPECIFIED,
            pb.SKIP_REASON_ALREADY_PAID,
        ]
        assert {i.payout_id for i in lines} == {payouts[0].payout_id}
        assert await stack.available(seller) == (0, 1_800)
        assert len(_transfers_to(stack, payouts[0].psp_account)) == 1


@pytest.mark.parametrize("path", ["/v1/transfers", "/v1/payouts"])
async def test_a_lost_psp_answer_is_retried_with_the_same_key_and_pays_once(stack: PayoutStack, path: str):
    seller = uid("s-drop")
    await stack.register(seller)
    await stack.sell(seller, 3_000)  # owed 2700
    # The PSP does the work, then the connection drops before its answer reaches us.
    stack.sim.admin.set_faults(
        [{"kind": "drop_after_commit", "path_prefix": path, "method": "POST", "count": 1}]
    )
    try:
        run = await stack.pay([seller])
    finally:
        stack.sim.admin.clear_faults()
    (item,) = run.items
    stuck = (await stack.payout(item.payout_id)).payout
    # Outcome unknown is never a failure: the pay-out waits where it was, with the fault noted.
    expected = pb.PAYOUT_STATE_RESERVED if path == "/v1/transfers" else pb.PAYOUT_STATE_TRANSFERRED
    assert stuck.state == expected and stuck.last_error

    await stack.janitor.janitor_pass()  # the same keys: the PSP replays what it did

    done = (await stack.payout(item.payout_id)).payout
    assert done.state == pb.PAYOUT_STATE_IN_TRANSIT and not done.last_error
    assert len(_transfers_to(stack, done.psp_account)) == 1
    (psp_payout,) = _psp_payouts(stack, done.psp_account)
    assert psp_payout.id == done.psp_payout_id and psp_payout.amount == 2_700
    assert await stack.available(seller) == (0, 2_700)


@pytest.mark.parametrize("path", ["/v1/transfers", "/v1/payouts"])
async def test_a_step_resumed_after_the_psp_forgot_its_key_finds_what_it_did_and_pays_once(
    stack: PayoutStack, path: str
):
    # Chaos seeds 295 and 297: the answer was lost, and the retry came after the PSP's 24 h on its
    # idempotency key, so the same key no longer replays; sent again, the transfer would go twice (or
    # be refused for the balance the first one took).
    seller = uid("s-forgot")
    await stack.register(seller)
    await stack.sell(seller, 3_000)  # owed 2700
    stack.sim.admin.set_faults(
        [{"kind": "drop_after_commit", "path_prefix": path, "method": "POST", "count": 1}]
    )
    try:
        run = await stack.pay([seller])
    finally:
        stack.sim.admin.clear_faults()
    (item,) = run.items
    assert (await stack.payout(item.payout_id)).payout.last_error
    stack.sim.admin.advance(hours=25)  # the PSP forgets the key

    await stack.janitor.janitor_pass()

    done = (await stack.payout(item.payout_id)).payout
    assert done.state in (pb.PAYOUT_STATE_IN_TRANSIT, pb.PAYOUT_STATE_PAID) and not done.last_error
    (transfer,) = _transfers_to(stack, done.psp_account)
    assert transfer.id == done.psp_transfer_id and transfer.amount == 2_700
    (psp_payout,) = _psp_payouts(stack, done.psp_account)
    assert psp_payout.id == done.psp_payout_id and psp_payout.amount == 2_700


async def test_the_janitor_takes_the_final_answer_from_the_psp_when_no_event_comes(
    stack: PayoutStack, services
):
    seller, sent = await _one_paid_out(stack, 4_000)
    stack.sim.admin.advance(days=2)  # the PSP paid it; its webhook never reaches us

    await stack.janitor.janitor_pass()

    assert (await stack.payout(sent.payout_id)).payout.state == pb.PAYOUT_STATE_PAID
    assert await stack.available(seller) == (0, 0)
    books = {f"liability:seller_payable:{seller}/USD": 3_600, IN_TRANSIT: 0, BANK: -3_600}
    assert await posted_for(services, [sent.payout_id]) == books
    # The webhook arrives after all: nothing more happens.
    (event,) = stack.payout_events(sent.psp_account, sent.psp_payout_id)
    assert await stack.settle(event) == "NO_CHANGE"
    assert await posted_for(services, [sent.payout_id]) == books


async def test_a_failed_payout_returns_the_money_reverses_the_transfer_pauses_the_seller_and_alerts(
    stack: PayoutStack, services
):
    seller = uid("s-closed")
    await stack.register(seller, bank=CLOSED_BANK)  # the PSP fails payouts to it: account_closed
    await stack.sell(seller, 6_000)  # owed 5400
    run = await stack.pay([seller])
    sent = (await stack.payout(run.items[0].payout_id)).payout
    alerts = _failed_total()
    stack.sim.admin.advance(days=2)

    (event,) = stack.payout_events(sent.psp_account, sent.psp_payout_id)
    assert event["type"] == "payout.failed"
    assert await stack.settle(event) == "APPLIED"

    failed = (await stack.payout(sent.payout_id)).payout
    assert (failed.state, failed.failure_code) == (pb.PAYOUT_STATE_FAILED, "account_closed")
    assert await stack.available(seller) == (5_400, 0)
    assert await stack.balance(f"liability:seller_payable:{seller}/USD") == 5_400
    # Sent, then reversed: every account the pay-out touched is back where it was.
    assert await posted_for(services, [sent.payout_id]) == {
        f"liability:seller_payable:{seller}/USD": 0,
        IN_TRANSIT: 0,
    }
    got = (await stack.payouts.GetSeller(pb.GetSellerRequest(seller_account=seller))).seller
    assert got.state == pb.SELLER_STATE_PAYOUTS_PAUSED and "account_closed" in got.state_reason
    assert _failed_total() == alerts + 1
    assert await stack.verify_ledger() == []
    # The PSP put the money back in the connected account; the transfer reversal brings it home, once.
    client = stack.sim.client(max_network_retries=0)
    transfer = client.v1.transfers.retrieve(sent.psp_transfer_id)
    assert (transfer.reversed, transfer.amount_reversed) == (True, 5_400)
    (reversal,) = client.v1.transfers.reversals.list(sent.psp_transfer_id).data
    assert reversal.metadata["payout_id"] == sent.payout_id
    assert client.v1.balance.retrieve(options={"stripe_account": sent.psp_account}).available[0].amount == 0
    assert await stack.settle(dict(event, id=event["id"] + "_again")) == "NO_CHANGE"
    assert len(client.v1.transfers.reversals.list(sent.psp_transfer_id).data) == 1
    history = (await stack.payout(sent.payout_id)).history
    assert f"reversed by {reversal.id}" in history[-1].detail


async def test_paid_then_failed_puts_the_money_back(stack: PayoutStack, services):
    seller, sent = await _one_paid_out(stack, 7_000)  # owed 6300
    stack.sim.admin.advance(days=2)
    (paid,) = stack.payout_events(sent.psp_account, sent.psp_payout_id)
    assert await stack.settle(paid) == "APPLIED"
    assert (await posted_for(services, [sent.payout_id]))[BANK] == -6_300

    # Days later the bank returns it: Stripe reports the same payout failed.
    returned = copy.deepcopy(paid)
    returned.update(id=paid["id"] + "_returned", type="payout.failed")
    returned["data"]["object"].update(status="failed", failure_code="account_closed")
    assert await stack.settle(returned) == "APPLIED"
    assert await stack.settle(dict(returned, id=returned["id"] + "_again")) == "NO_CHANGE"

    back = await stack.payout(sent.payout_id)
    assert (back.payout.state, back.payout.failure_code) == (pb.PAYOUT_STATE_FAILED, "account_closed")
    assert [t.to_state for t in back.history][-2:] == [pb.PAYOUT_STATE_PAID, pb.PAYOUT_STATE_FAILED]
    assert await stack.available(seller) == (6_300, 0)
    assert await stack.balance(f"liability:seller_payable:{seller}/USD") == 6_300
    assert await posted_for(services, [sent.payout_id]) == {
        f"liability:seller_payable:{seller}/USD": 0,
        IN_TRANSIT: 0,
        BANK: 0,
    }
    seller_now = (await stack.payouts.GetSeller(pb.GetSellerRequest(seller_account=seller))).seller
    assert seller_now.state == pb.SELLER_STATE_PAYOUTS_PAUSED
    assert await stack.verify_ledger() == []

    # An operator resumes the seller; the next period's run pays the money again, once.
    await stack.payouts.ResumeSeller(pb.ResumeSellerRequest(seller_account=seller), metadata=key())
    await stack.sell(uid("s-unregistered"), 10_000)  # the platform's PSP balance covers the transfer
    again = await stack.finished((await stack.start_run(period="2026-10", sellers=[seller])).run_id)
    resent = (await stack.payout(again.items[0].payout_id)).payout
    assert (resent.state, resent.amount.amount_minor) == (pb.PAYOUT_STATE_IN_TRANSIT, 6_300)


async def test_a_transfer_the_psp_refuses_is_undone_and_failed_without_pausing_the_seller(
    stack: PayoutStack, services
):
    stack.sim.admin.reset()  # the platform's PSP balance starts empty (each test makes its own accounts)
    seller = uid("s-early")
    await stack.register(seller)
    await stack.sell(seller, 8_000, payment_method="pm_card_visa")  # funds pending at the PSP for 2 days
    run = await stack.pay([seller])

    failed = (await stack.payout(run.items[0].payout_id)).payout
    assert (failed.state, failed.failure_code) == (pb.PAYOUT_STATE_FAILED, "balance_insufficient")
    # The PSP's message quotes a test card number: it is stored redacted.
    assert "[REDACTED:pan]" in failed.failure_message and "4000000000000077" not in failed.failure_message
    assert await stack.available(seller) == (7_200, 0)
    assert await posted_for(services, [failed.payout_id]) == {
        f"liability:seller_payable:{seller}/USD": 0,
        IN_TRANSIT: 0,
    }
    assert _transfers_to(stack, failed.psp_account) == []
    got = (await stack.payouts.GetSeller(pb.GetSellerRequest(seller_account=seller))).seller
    assert got.state == pb.SELLER_STATE_ACTIVE  # the platform's balance, not the seller's bank
