"""ListSellers filtered by account prefix and state (a page token belongs to its filters), a preview
of named sellers only, and ListPayoutRuns: what the console's Sellers and Pay-out runs pages ask for."""

from __future__ import annotations

import uuid

import grpc
import pytest

from svckit.gen.payments.v1 import payout_service_pb2 as pb
from svckit.gen.payments.v1 import payout_service_pb2_grpc as pb_grpc


def _key() -> tuple[tuple[str, str], ...]:
    return (("idempotency-key", uuid.uuid4().hex),)


async def test_sellers_are_listed_by_prefix_and_state_and_previewed_by_name(operator_channels):
    payouts = pb_grpc.PayoutServiceStub(operator_channels["payment"])
    prefix = f"s-flt-{uuid.uuid4().hex[:8]}-"
    names = [prefix + n for n in ("a", "b", "c")]
    for name in names:
        seller = pb.Seller(seller_account=name, payout_currency="USD", schedule=pb.PAYOUT_SCHEDULE_MONTHLY)
        await payouts.RegisterSeller(pb.RegisterSellerRequest(seller=seller), metadata=_key())
    await payouts.PauseSeller(pb.PauseSellerRequest(seller_account=names[1], reason="KYC"), metadata=_key())

    first = await payouts.ListSellers(pb.ListSellersRequest(seller_account_prefix=prefix, page_size=2))
    assert [s.seller_account for s in first.sellers] == names[:2] and first.next_page_token
    rest = await payouts.ListSellers(
        pb.ListSellersRequest(seller_account_prefix=prefix, page_size=2, page_token=first.next_page_token)
    )
    assert [s.seller_account for s in rest.sellers] == names[2:] and not rest.next_page_token
    paused = await payouts.ListSellers(
        pb.ListSellersRequest(seller_account_prefix=prefix, state=pb.SELLER_STATE_PAYOUTS_PAUSED)
    )
    assert [s.seller_account for s in paused.sellers] == [names[1]]
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await payouts.ListSellers(
            pb.ListSellersRequest(
                seller_account_prefix=prefix,
                state=pb.SELLER_STATE_ACTIVE,
                page_token=first.next_page_token,
            )
        )
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "INVALID_PAGE_TOKEN" in str(refused.value.trailing_metadata()) + str(refused.value.details())

    preview = await payouts.PreviewPayoutRun(
        pb.PreviewPayoutRunRequest(period="2026-11", seller_accounts=[names[0], names[1]])
    )
    items = {i.seller_account: i.skip_reason for i in preview.run.items}
    assert items == {names[0]: pb.SKIP_REASON_NO_PSP_ACCOUNT, names[1]: pb.SKIP_REASON_PAUSED}


async def test_runs_are_listed_newest_first_by_period(operator_channels):
    payouts = pb_grpc.PayoutServiceStub(operator_channels["payment"])
    seller = f"s-runs-{uuid.uuid4().hex[:8]}"
    await payouts.RegisterSeller(
        pb.RegisterSellerRequest(
            seller=pb.Seller(seller_account=seller, payout_currency="USD", schedule=pb.PAYOUT_SCHEDULE_MANUAL)
        ),
        metadata=_key(),
    )
    period = "2019-03"  # no other test runs it
    started = [
        (
            await payouts.StartPayoutRun(
                pb.StartPayoutRunRequest(period=period, dry_run=True, seller_accounts=[seller]),
                metadata=_key(),
            )
        ).run.run_id
        for _ in range(2)
    ]
    first = await payouts.ListPayoutRuns(pb.ListPayoutRunsRequest(period=period, page_size=1))
    assert [r.run_id for r in first.runs] == started[1:] and first.next_page_token
    assert first.runs[0].dry_run and not first.runs[0].items and first.runs[0].sellers_total == 1
    rest = await payouts.ListPayoutRuns(
        pb.ListPayoutRunsRequest(period=period, page_size=1, page_token=first.next_page_token)
    )
    assert [r.run_id for r in rest.runs] == started[:1] and not rest.next_page_token
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await payouts.ListPayoutRuns(
            pb.ListPayoutRunsRequest(period="2019-04", page_token=first.next_page_token)
        )
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert started[0] in [r.run_id for r in (await payouts.ListPayoutRuns(pb.ListPayoutRunsRequest())).runs]
