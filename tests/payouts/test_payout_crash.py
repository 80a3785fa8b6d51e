"""A pay-out whose process dies right after any one of its remote effects (the effect happened, our
record of it did not) is finished once by the janitor: one reservation, one posting, one transfer,
one PSP payout."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest

from payment_svc.payouts.books import Books
from payment_svc.payouts.deps import PayoutDeps
from payment_svc.payouts.domain import parse_period
from payment_svc.payouts.run import new_run_id
from payment_svc.payouts.service import Payouts
from svckit.gen.payments.v1 import payout_service_pb2 as pb
from svckit.gen.wallet.v1 import wallet_service_pb2 as wpb
from tests.payments.books import posted_for
from tests.payouts.conftest import PERIOD, PayoutStack, uid


class Crash(BaseException):
    """The process dies here (a BaseException, like the cancellation a killed worker's tasks see)."""


class DiesAfter:
    """``target`` whose ``method`` does its work, then the process dies before the answer is used."""

    def __init__(self, target: Any, method: str) -> None:
        self._target, self._method = target, method

    def __getattr__(self, name: str) -> Any:
        real = getattr(self._target, name)
        if name != self._method:
            return real

        async def call(*args: Any, **kwargs: Any) -> Any:
            await real(*args, **kwargs)
            raise Crash(name)

        return call


@pytest.mark.parametrize(
    ("port", "method"),
    [
        ("books", "reserve_many"),
        ("books", "post_sent_many"),
        ("psp", "create_transfer"),
        ("psp", "create_payout"),
    ],
)
async def test_a_crash_after_any_step_is_finished_once(stack: PayoutStack, services, port: str, method: str):
    seller = uid("s-crash")
    await stack.register(seller)
    await stack.sell(seller, 5_000)  # owed 4500
    deps = stack.uses.deps
    # A worker whose claims lapse at once, so the janitor may take over right after it dies.
    short = deps.settings.model_copy(update={"payout_claim_lease_seconds": 0.01})
    dying = Payouts(
        PayoutDeps(
            deps.store,
            # A DiesAfter answers every attribute with its target's: it stands in for the Books it wraps.
            cast(Books, DiesAfter(deps.books, method)) if port == "books" else deps.books,
            DiesAfter(deps.psp, method) if port == "psp" else deps.psp,
            short,
        )
    )
    run_id = new_run_id()
    async with deps.store.unit() as repo:  # the run as StartPayoutRun stores it
        await repo.insert_run(run_id, parse_period(PERIOD).name, False, [seller], 1)
    with pytest.raises(Crash):
        await dying.runs.resume(run_id)
    await asyncio.sleep(0.05)  # the dead worker's lease lapses

    await stack.janitor.janitor_pass()

    run = await stack.finished(run_id)
    (item,) = run.items
    payout = (await stack.payout(item.payout_id)).payout
    assert (payout.state, payout.amount.amount_minor) == (pb.PAYOUT_STATE_IN_TRANSIT, 4_500)
    assert await stack.available(seller) == (0, 4_500)
    movements = (
        await stack.wallet.ListMovements(wpb.ListMovementsRequest(seller_id=seller, currency="USD"))
    ).movements
    assert [m.kind for m in movements].count(wpb.MOVEMENT_KIND_RESERVE) == 1
    assert await posted_for(services, [payout.payout_id]) == {
        f"liability:seller_payable:{seller}/USD": 4_500,
        "liability:payouts_in_transit/USD": -4_500,
    }
    client = stack.sim.client(max_network_retries=0)
    transfers = client.v1.transfers.list(params={"destination": payout.psp_account, "limit": 10}).data
    psp_payouts = client.v1.payouts.list(
        params={"limit": 10}, options={"stripe_account": payout.psp_account}
    ).data
    assert [t.id for t in transfers] == [payout.psp_transfer_id]
    assert [p.id for p in psp_payouts] == [payout.psp_payout_id]
