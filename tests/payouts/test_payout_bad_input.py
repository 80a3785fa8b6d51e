"""Bad input to pay-outs gets a clear error (status and reason) and changes nothing."""

from __future__ import annotations

from collections.abc import Awaitable
from datetime import UTC, datetime
from typing import Any

import grpc
import pytest
import sqlalchemy as sa

from svckit.gen.common.v1 import money_pb2
from svckit.gen.payments.v1 import payout_service_pb2 as pb
from svckit.grpc_errors import error_info
from tests.payouts.conftest import PERIOD, PayoutStack, key, uid

INVALID, NOT_FOUND = grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND


async def _refused(call: Awaitable[Any], code: grpc.StatusCode, reason: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await call
    info = error_info(exc.value)
    assert (exc.value.code(), info.reason if info else None) == (code, reason), exc.value.details()


def _seller(account: str, psp_account: str, **fields: Any) -> pb.Seller:
    return pb.Seller(seller_account=account, psp_account=psp_account, payout_currency="USD", **fields)


async def _runs(stack: PayoutStack) -> int:
    async with stack.handle.engine.connect() as conn:
        return int((await conn.execute(sa.text("SELECT count(*) FROM payout_runs"))).scalar_one())


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"minimum_payouts": [money_pb2.Money(amount_minor=-1, currency="USD")]}, "NEGATIVE_MINIMUM"),
        ({"payout_currency": "XQZ"}, "UNKNOWN_CURRENCY"),
        ({"payout_currency": "usd"}, "INVALID_CURRENCY"),
        ({"seller_account": "bad seller/1"}, "INVALID_SELLER_ACCOUNT"),
        ({"seller_account": ""}, "INVALID_SELLER_ACCOUNT"),
        ({"reserve_bps": 10_001, "reserve_days": 7}, "INVALID_RESERVE"),
        ({"reserve_bps": 500}, "INVALID_RESERVE"),
        ({"anchor_day": 32}, "INVALID_ANCHOR_DAY"),
        ({"psp_account": "not-an-account"}, "INVALID_PSP_ACCOUNT"),
        ({"psp_account": "acct_NoSuchAccount1"}, "PSP_ACCOUNT_UNKNOWN"),
    ],
)
async def test_a_bad_registration_is_refused_and_stores_nothing(
    stack: PayoutStack, fields: dict, reason: str
):
    account = uid("s-bad")
    values: dict[str, Any] = {  # Seller fields by name, of several types
        "seller_account": account,
        "psp_account": stack.connected_account(),
        "payout_currency": "USD",
    }
    values.update(fields)
    request = pb.RegisterSellerRequest(seller=pb.Seller(**values))
    await _refused(stack.payouts.RegisterSeller(request, metadata=key()), INVALID, reason)
    await _refused(
        stack.payouts.GetSeller(pb.GetSellerRequest(seller_account=account)), NOT_FOUND, "SELLER_NOT_FOUND"
    )


async def test_a_bad_update_is_refused_and_leaves_the_seller_as_it_was(stack: PayoutStack):
    account = uid("s-upd")
    before = await stack.register(account, minimum=1_000)
    bad = pb.UpdateSellerRequest(
        seller=_seller(
            account, before.psp_account, minimum_payouts=[money_pb2.Money(amount_minor=-5, currency="USD")]
        ),
        update_fields=["minimum_payouts"],
    )
    await _refused(stack.payouts.UpdateSeller(bad, metadata=key()), INVALID, "NEGATIVE_MINIMUM")
    unknown_field = pb.UpdateSellerRequest(
        seller=_seller(account, before.psp_account), update_fields=["state_reason"]
    )
    await _refused(
        stack.payouts.UpdateSeller(unknown_field, metadata=key()), INVALID, "INVALID_UPDATE_FIELDS"
    )
    missing = pb.UpdateSellerRequest(
        seller=_seller(uid("s-none"), before.psp_account), update_fields=["reserve_bps"]
    )
    await _refused(stack.payouts.UpdateSeller(missing, metadata=key()), NOT_FOUND, "SELLER_NOT_FOUND")
    after = (await stack.payouts.GetSeller(pb.GetSellerRequest(seller_account=account))).seller
    assert after == before

    good = pb.UpdateSellerRequest(
        seller=_seller(
            account, before.psp_account, minimum_payouts=[money_pb2.Money(amount_minor=0, currency="USD")]
        ),
        update_fields=["minimum_payouts"],
    )
    changed = (await stack.payouts.UpdateSeller(good, metadata=key())).seller
    assert [m.amount_minor for m in changed.minimum_payouts] == [
        0
    ] and changed.psp_account == before.psp_account


async def test_a_registration_twice_is_refused_and_replays_with_its_key(stack: PayoutStack):
    account = uid("s-dup")
    request = pb.RegisterSellerRequest(seller=_seller(account, stack.connected_account()))
    same_key = key()
    first = await stack.payouts.RegisterSeller(request, metadata=same_key)
    assert await stack.payouts.RegisterSeller(request, metadata=same_key) == first  # a retry replays
    await _refused(
        stack.payouts.RegisterSeller(request, metadata=key()),
        grpc.StatusCode.ALREADY_EXISTS,
        "SELLER_ALREADY_EXISTS",
    )


@pytest.mark.parametrize(
    ("period", "reason"),
    [
        ("2026-13", "INVALID_PERIOD"),
        ("2026-1", "INVALID_PERIOD"),
        ("november", "INVALID_PERIOD"),
        ("", "INVALID_PERIOD"),
        ("2026-W54", "INVALID_PERIOD"),
        ("2099-01", "PERIOD_NOT_ENDED"),
        (datetime.now(UTC).strftime("%Y-%m"), "PERIOD_NOT_ENDED"),
    ],
)
async def test_a_run_of_a_bad_or_unfinished_period_is_refused_and_nothing_runs(
    stack: PayoutStack, period: str, reason: str
):
    runs = await _runs(stack)
    await _refused(
        stack.payouts.StartPayoutRun(pb.StartPayoutRunRequest(period=period), metadata=key()), INVALID, reason
    )
    await _refused(stack.payouts.PreviewPayoutRun(pb.PreviewPayoutRunRequest(period=period)), INVALID, reason)
    assert await _runs(stack) == runs


async def test_a_run_naming_an_unknown_seller_is_refused_and_nothing_runs(stack: PayoutStack):
    known = uid("s-known")
    await stack.register(known)
    await stack.sell(known, 1_000)
    runs = await _runs(stack)
    request = pb.StartPayoutRunRequest(period=PERIOD, seller_accounts=[known, uid("s-ghost")])
    await _refused(stack.payouts.StartPayoutRun(request, metadata=key()), NOT_FOUND, "SELLER_NOT_FOUND")
    bad_id = pb.StartPayoutRunRequest(period=PERIOD, seller_accounts=["no spaces allowed"])
    await _refused(stack.payouts.StartPayoutRun(bad_id, metadata=key()), INVALID, "INVALID_SELLER_ACCOUNT")
    assert await _runs(stack) == runs
    assert await stack.available(known) == (900, 0)
    listed = await stack.payouts.ListPayouts(pb.ListPayoutsRequest(seller_account=known))
    assert list(listed.payouts) == []


async def test_unknown_ids_are_not_found(stack: PayoutStack):
    await _refused(
        stack.payouts.GetPayout(pb.GetPayoutRequest(payout_id="pyo_nope")), NOT_FOUND, "PAYOUT_NOT_FOUND"
    )
    await _refused(
        stack.payouts.GetPayoutRun(pb.GetPayoutRunRequest(run_id="prun_nope")),
        NOT_FOUND,
        "PAYOUT_RUN_NOT_FOUND",
    )
    await _refused(
        stack.payouts.GetStatement(pb.GetStatementRequest(seller_account=uid("s-nobody"), period=PERIOD)),
        NOT_FOUND,
        "SELLER_NOT_FOUND",
    )
    await _refused(
        stack.payouts.PauseSeller(
            pb.PauseSellerRequest(seller_account=uid("s-nobody"), reason="x"), metadata=key()
        ),
        NOT_FOUND,
        "SELLER_NOT_FOUND",
    )
