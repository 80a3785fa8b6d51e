"""A refund after a pay-out: the buyer is refunded whatever the seller's balance; what the seller's wallet
does not hold becomes their debt (``asset:seller_receivable``), and the next pay-out nets it off first."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any, cast

import grpc
import pytest

from payment_svc.payouts.books import Books
from payment_svc.payouts.deps import PayoutDeps
from payment_svc.payouts.domain import parse_period
from payment_svc.payouts.run import new_run_id
from payment_svc.payouts.service import Payouts
from svckit.gen.common.v1 import money_pb2
from svckit.gen.ledger.v1 import ledger_service_pb2 as lpb
from svckit.gen.payments.v1 import payout_service_pb2 as pb
from svckit.grpc_errors import error_info
from tests.payments.books import posted_for
from tests.payouts.conftest import PERIOD, PayoutStack, eventually, key, uid


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
    assert await stack.settle(paid) == "APPLIED"
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


async def _owes(stack: PayoutStack, seller: str, amount: int, currency: str) -> None:
    """A debt as settlement books a refund's shortfall (Dr seller_receivable / Cr psp_receivable),
    posted straight to the ledger: the cheap way to a debt in a currency the seller is not paid in."""
    entries = [
        lpb.Entry(
            account=f"asset:seller_receivable:{seller}/{currency}",
            direction=lpb.DIRECTION_DEBIT,
            amount_minor=amount,
            currency=currency,
        ),
        lpb.Entry(
            account=f"asset:psp_receivable:stripe/{currency}",
            direction=lpb.DIRECTION_CREDIT,
            amount_minor=amount,
            currency=currency,
        ),
    ]
    await stack.ledger.PostTransaction(
        lpb.PostTransactionRequest(entries=entries, description="refund shortfall (test)"), metadata=key()
    )


async def test_a_debt_in_another_currency_is_its_own_and_an_operator_writes_it_off_once(
    stack: PayoutStack, services
):
    seller = uid("s-eurdebt")
    eur_debt = f"asset:seller_receivable:{seller}/EUR"
    await stack.register(seller)  # paid in USD
    await stack.sell(seller, 10_000)  # owed 9000 USD
    await _owes(stack, seller, 700, "EUR")

    # Netted per currency: the EUR debt takes nothing off the USD pay-out, and stays owed in EUR.
    paid = _item(await stack.pay([seller]), seller)
    assert (paid.amount.amount_minor, paid.amount.currency, paid.skip_reason) == (
        9_000,
        "USD",
        pb.SKIP_REASON_UNSPECIFIED,
    )
    assert await stack.balance(eur_debt) == 700

    async def write_off(
        amount: int, reason: str = "seller closed; not worth collecting"
    ) -> pb.WriteOffSellerDebtResponse:
        return await stack.payouts.WriteOffSellerDebt(
            pb.WriteOffSellerDebtRequest(
                seller_account=seller,
                amount=money_pb2.Money(amount_minor=amount, currency="EUR"),
                reason=reason,
            ),
            metadata=call_key,
        )

    # Bad input is refused and writes nothing off.
    call_key = key()
    for amount, reason, code, expected in [
        (701, "too much", grpc.StatusCode.FAILED_PRECONDITION, "WRITE_OFF_EXCEEDS_DEBT"),
        (700, "  ", grpc.StatusCode.INVALID_ARGUMENT, "MISSING_FIELD"),
        (0, "nothing", grpc.StatusCode.INVALID_ARGUMENT, "AMOUNT_NOT_POSITIVE"),
    ]:
        call_key = key()
        with pytest.raises(grpc.aio.AioRpcError) as exc:
            await write_off(amount, reason)
        info = error_info(exc.value)
        assert (exc.value.code(), info.reason if info else None) == (code, expected)
    assert await stack.balance(eur_debt) == 700

    call_key = key()
    done = await write_off(500)
    again = await write_off(500)  # a retry with the same key: replayed, not written off twice
    assert (done.written_off.amount_minor, done.debt_left.amount_minor) == (500, 200)
    assert again == done
    assert await stack.balance(eur_debt) == 200
    assert await posted_for(services, [seller]) == {eur_debt: -500, "expense:bad_debt/EUR": 500}
    assert await stack.verify_ledger() == []


async def _write_off(stack: PayoutStack, seller: str, amount: int, currency: str = "USD"):
    return await stack.payouts.WriteOffSellerDebt(
        pb.WriteOffSellerDebtRequest(
            seller_account=seller,
            amount=money_pb2.Money(amount_minor=amount, currency=currency),
            reason="not worth collecting",
        ),
        metadata=key(),
    )


async def test_two_write_offs_of_one_debt_at_once_take_it_once(stack: PayoutStack, services):
    seller = uid("s-twowo")
    receivable = f"asset:seller_receivable:{seller}/EUR"
    await stack.register(seller)
    await _owes(stack, seller, 700, "EUR")

    # Both read a debt of 700 before either posts: the ledger's non-negative rule on the receivable
    # lets only one take it.
    results = await asyncio.gather(
        *(_write_off(stack, seller, 700, "EUR") for _ in range(2)), return_exceptions=True
    )
    refused = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(refused) == 1 and len(results) == 2
    info = error_info(refused[0])
    assert (refused[0].code(), info.reason if info else None) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "WRITE_OFF_EXCEEDS_DEBT",
    )
    assert await stack.balance(receivable) == 0
    assert await posted_for(services, [seller]) == {receivable: -700, "expense:bad_debt/EUR": 700}
    assert await stack.verify_ledger() == []


class WritesOffFirst:
    """The pay-out's ``Books``, with an operator writing the seller's whole debt off just before the
    pay-out nets it (the run read the debt before the write-off)."""

    def __init__(self, target: Books, stack: PayoutStack) -> None:
        self._target, self._stack = target, stack

    def __getattr__(self, name: str) -> Any:
        return getattr(self._target, name)

    async def post_netted(self, payout_id: str, seller: str, amount: int, currency: str) -> int:
        await _write_off(self._stack, seller, amount, currency)
        return await self._target.post_netted(payout_id, seller, amount, currency)


async def test_a_debt_written_off_after_the_run_read_it_fails_the_payout_with_nothing_moved(
    stack: PayoutStack, services
):
    seller = uid("s-woraced")
    receivable = f"asset:seller_receivable:{seller}/USD"
    await stack.register(seller)
    await stack.sell(seller, 10_000)  # owed 9000
    await _owes(stack, seller, 700, "USD")
    deps = stack.uses.deps
    racing = Payouts(
        PayoutDeps(deps.store, cast(Books, WritesOffFirst(deps.books, stack)), deps.psp, deps.settings)
    )
    run_id = new_run_id()
    async with deps.store.unit() as repo:  # the run as StartPayoutRun stores it
        await repo.insert_run(run_id, parse_period(PERIOD).name, False, [seller], 1)
    await racing.runs.resume(run_id)

    (item,) = (await stack.finished(run_id)).items
    payout = (await stack.payout(item.payout_id)).payout
    assert (payout.state, payout.failure_code) == (pb.PAYOUT_STATE_FAILED, "ledger_insufficient_balance")
    assert await stack.available(seller) == (9_000, 0)  # not debited for the debt, nothing reserved
    assert await stack.balance(receivable) == 0  # written off once, not also netted
    assert await posted_for(services, [payout.payout_id]) == {}
    assert (
        stack.sim.client(max_network_retries=0)
        .v1.transfers.list(params={"destination": payout.psp_account, "limit": 10})
        .data
        == []
    )
    assert await stack.verify_ledger() == []
