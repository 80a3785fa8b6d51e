"""A run trusts what the PSP said about a seller's connected account (payouts_enabled) for a while, by our
read at registration or in a run, or by its account.updated event, and reads the account only when that
is older than psp_account_max_age_seconds."""

from __future__ import annotations

import time
import uuid
from typing import Any

import sqlalchemy as sa

from svckit.gen.payments.v1 import payout_service_pb2 as pb
from tests.payouts.conftest import PayoutStack, uid


def account_updated(account: str, payouts_enabled: bool, created: int) -> dict[str, Any]:
    return {
        "id": f"evt_{uuid.uuid4().hex[:16]}",
        "object": "event",
        "type": "account.updated",
        "created": created,
        "account": account,
        "data": {"object": {"id": account, "object": "account", "payouts_enabled": payouts_enabled}},
    }


def _item(run: pb.PayoutRun, seller: str) -> pb.PayoutRunItem:
    (item,) = [i for i in run.items if i.seller_account == seller]
    return item


async def test_a_seller_whose_account_the_psp_disabled_is_not_paid_with_the_reason(stack: PayoutStack):
    seller = uid("s-disabled")
    acct = (await stack.register(seller)).psp_account  # registration read it: payouts enabled
    await stack.sell(seller, 1_000)
    # The PSP tells us it disabled payouts on the account (it still says enabled when asked: the run
    # must go by the event, not by a read).
    answer = await stack.deliver(account_updated(acct, False, int(time.time())))
    assert answer.accepted and answer.applied

    item = _item(await stack.pay([seller]), seller)

    assert item.skip_reason == pb.SKIP_REASON_PAYOUTS_NOT_ENABLED and not item.payout_id
    assert acct in item.detail
    assert await stack.available(seller) == (900, 0)

    # Enabled again, by an event: the next run pays.
    assert (await stack.deliver(account_updated(acct, True, int(time.time()) + 1))).applied
    assert _item(await stack.pay([seller]), seller).amount.amount_minor == 900


async def test_an_older_account_event_does_not_override_a_later_word(stack: PayoutStack):
    seller = uid("s-late-event")
    acct = (await stack.register(seller)).psp_account
    # Sent before the read at registration, delivered after it: stale.
    answer = await stack.deliver(account_updated(acct, False, int(time.time()) - 3600))
    assert answer.accepted and not answer.applied
    await stack.sell(seller, 1_000)
    assert _item(await stack.pay([seller]), seller).amount.amount_minor == 900


async def test_a_run_reads_the_account_when_what_the_psp_said_is_old(stack: PayoutStack):
    seller = uid("s-stale")
    await stack.register(seller)
    await stack.sell(seller, 1_000)
    # Said "disabled" 40 days ago, longer than the maximum age (35 days): the run asks the PSP, which
    # says enabled, and records it.
    async with stack.handle.engine.begin() as conn:
        await conn.execute(
            sa.text(
                "UPDATE sellers SET psp_payouts_enabled = false,"
                " psp_account_checked_at = now() - interval '40 days' WHERE seller_account = :s"
            ),
            {"s": seller},
        )

    assert _item(await stack.pay([seller]), seller).amount.amount_minor == 900

    async with stack.handle.engine.connect() as conn:
        enabled, age = (
            await conn.execute(
                sa.text(
                    "SELECT psp_payouts_enabled, extract(epoch FROM now() - psp_account_checked_at)"
                    " FROM sellers WHERE seller_account = :s"
                ),
                {"s": seller},
            )
        ).one()
    assert enabled is True and age < 86_400
