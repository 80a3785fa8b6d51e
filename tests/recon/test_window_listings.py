"""The window listings reconciliation's per-record checks read: the ledger's transactions by post time, every
wallet's movements by create time and every order's refunds by create time, oldest (or newest) first by
(time, id) with keyset pages; a window with one bound or no time in it is refused."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid

import grpc
import pytest

from ledger_svc import naming
from svckit.gen.common.v1 import money_pb2
from svckit.gen.ledger.v1 import ledger_service_pb2 as lpb
from svckit.gen.ledger.v1 import ledger_service_pb2_grpc as lpb_grpc
from svckit.gen.payments.v1 import payment_service_pb2 as pb
from svckit.gen.payments.v1 import payment_service_pb2_grpc as pb_grpc
from svckit.gen.wallet.v1 import wallet_service_pb2 as wpb
from svckit.gen.wallet.v1 import wallet_service_pb2_grpc as wpb_grpc
from svckit.testing import refusal_info

pytestmark = pytest.mark.asyncio


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _window(request, start: dt.datetime, end: dt.datetime, prefix: str) -> None:
    getattr(request, f"{prefix}_from").FromDatetime(start)
    getattr(request, f"{prefix}_before").FromDatetime(end)


async def _all_pages(rpc, request, items: str) -> list:
    found = []
    while True:
        page = await rpc(request)
        found.extend(getattr(page, items))
        if not page.next_page_token:
            return found
        request.page_token = page.next_page_token


async def test_the_ledger_lists_a_window_of_transactions_oldest_first_in_pages(channels, operator_channels):
    tag = uuid.uuid4().hex[:8]
    poster = lpb_grpc.LedgerServiceStub(channels["ledger"])
    start = _now()
    refs = [f"win_{tag}_{i}" for i in range(3)]
    for ref in refs:
        await poster.PostTransaction(
            lpb.PostTransactionRequest(
                entries=[
                    lpb.Entry(
                        account=naming.psp_receivable("stripe", "USD"),
                        direction=lpb.DIRECTION_DEBIT,
                        amount_minor=100,
                        currency="USD",
                    ),
                    lpb.Entry(
                        account=naming.seller_payable(f"s-{tag}", "USD"),
                        direction=lpb.DIRECTION_CREDIT,
                        amount_minor=100,
                        currency="USD",
                    ),
                ],
                description="window listing",
                external_ref=ref,
            ),
            metadata=[("idempotency-key", uuid.uuid4().hex)],
        )
    await asyncio.sleep(0.05)
    end = _now()
    reader = lpb_grpc.LedgerServiceStub(operator_channels["ledger"])
    request = lpb.ListTransactionsRequest(page_size=2)
    _window(request, start, end, "post_time")

    listed = await _all_pages(reader.ListTransactions, request, "transactions")

    mine = [t for t in listed if t.external_ref.startswith(f"win_{tag}_")]
    assert [t.external_ref for t in mine] == refs  # oldest first
    assert all(len(t.entries) == 2 for t in mine)
    assert [(t.post_time.ToDatetime(), t.id) for t in listed] == sorted(
        (t.post_time.ToDatetime(), t.id) for t in listed
    )
    one = lpb.ListTransactionsRequest(external_ref=refs[1])
    _window(one, start, end, "post_time")
    assert [t.external_ref for t in (await reader.ListTransactions(one)).transactions] == [refs[1]]


@pytest.mark.parametrize("bounds", ["from_only", "before_only", "empty"])
async def test_a_half_or_empty_window_is_refused_by_each_listing(operator_channels, bounds):
    start = _now()
    end = start if bounds == "empty" else start + dt.timedelta(hours=1)
    requests = [
        (lpb_grpc.LedgerServiceStub(operator_channels["ledger"]).ListTransactions, lpb.ListTransactionsRequest(),
         "post_time"),
        (wpb_grpc.WalletServiceStub(operator_channels["wallet"]).ListMovements, wpb.ListMovementsRequest(),
         "create_time"),
        (pb_grpc.PaymentServiceStub(operator_channels["payment"]).ListRefunds, pb.ListRefundsRequest(),
         "create_time"),
    ]  # fmt: skip
    for rpc, request, prefix in requests:
        if bounds != "before_only":
            getattr(request, f"{prefix}_from").FromDatetime(start)
        if bounds != "from_only":
            getattr(request, f"{prefix}_before").FromDatetime(end)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await rpc(request)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert refusal_info(refused.value).reason == "INVALID_FILTER"


async def test_a_token_of_another_window_is_refused(channels, operator_channels):
    start = _now()
    wallets = wpb_grpc.WalletServiceStub(channels["wallet"])
    tag = uuid.uuid4().hex[:8]
    for i in range(2):
        await wallets.Credit(
            wpb.CreditRequest(
                seller_id=f"s-{tag}",
                amount=money_pb2.Money(amount_minor=10, currency="USD"),
                reference=wpb.Reference(kind=wpb.REFERENCE_KIND_PAYMENT_ORDER, id=f"po_{tag}_{i}"),
            ),
            metadata=[("idempotency-key", uuid.uuid4().hex)],
        )
    end = _now() + dt.timedelta(seconds=1)
    reader = wpb_grpc.WalletServiceStub(operator_channels["wallet"])
    request = wpb.ListMovementsRequest(page_size=1, seller_id=f"s-{tag}", currency="USD")
    _window(request, start, end, "create_time")
    first = await reader.ListMovements(request)
    assert first.next_page_token
    other = wpb.ListMovementsRequest(page_size=1, page_token=first.next_page_token)
    _window(other, start, end, "create_time")  # every wallet's: another listing
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await reader.ListMovements(other)
    assert refusal_info(refused.value).reason == "INVALID_PAGE_TOKEN"


async def test_the_wallet_lists_every_wallets_movements_of_a_window_oldest_first(channels, operator_channels):
    tag = uuid.uuid4().hex[:8]
    wallets = wpb_grpc.WalletServiceStub(channels["wallet"])
    start = _now()
    sellers = [f"s-{tag}-{i}" for i in range(3)]
    for i, seller in enumerate(sellers):
        await wallets.Credit(
            wpb.CreditRequest(
                seller_id=seller,
                amount=money_pb2.Money(amount_minor=100 + i, currency="USD"),
                reference=wpb.Reference(kind=wpb.REFERENCE_KIND_PAYMENT_ORDER, id=f"po_{tag}_{i}"),
            ),
            metadata=[("idempotency-key", uuid.uuid4().hex)],
        )
    await asyncio.sleep(0.05)
    end = _now()
    reader = wpb_grpc.WalletServiceStub(operator_channels["wallet"])
    request = wpb.ListMovementsRequest(page_size=2)
    _window(request, start, end, "create_time")

    listed = await _all_pages(reader.ListMovements, request, "movements")

    mine = [m for m in listed if m.seller_id in sellers]
    assert [(m.seller_id, m.amount.amount_minor, m.reference.id) for m in mine] == [
        (s, 100 + i, f"po_{tag}_{i}") for i, s in enumerate(sellers)
    ]
    one = wpb.ListMovementsRequest(seller_id=sellers[2], currency="USD")
    _window(one, start, end, "create_time")
    assert [m.seller_id for m in (await reader.ListMovements(one)).movements] == [sellers[2]]
    outside = wpb.ListMovementsRequest()
    _window(outside, start - dt.timedelta(hours=2), start - dt.timedelta(hours=1), "create_time")
    assert not {m.seller_id for m in (await reader.ListMovements(outside)).movements} & set(sellers)


async def test_every_orders_refunds_of_a_window_by_state_or_by_id(infra, services, operator_channels):
    from tests.recon.test_settlement_run import _pay, _settled

    gateway = infra.channel(services["payment"].address, "gateway")
    try:
        payments = pb_grpc.PaymentServiceStub(gateway)
        start = _now()
        orders = await _pay({"payments": payments}, [3000, 2000])
        await _settled(services, orders)
        refunds = []
        for order in orders:
            refund = await payments.CreateRefund(
                pb.CreateRefundRequest(payment_order_id=order, amount_minor=500),
                metadata=[("idempotency-key", uuid.uuid4().hex)],
            )
            refunds.append(refund.refund.refund_id)
        await asyncio.sleep(0.05)
        end = _now()
        reader = pb_grpc.PaymentServiceStub(operator_channels["payment"])
        request = pb.ListRefundsRequest(page_size=1)
        _window(request, start, end, "create_time")

        listed = await _all_pages(reader.ListRefunds, request, "refunds")

        assert [r.refund_id for r in listed if r.refund_id in refunds] == list(
            reversed(refunds)
        )  # newest first
        by_id = await reader.ListRefunds(pb.ListRefundsRequest(refund_id=refunds[0]))
        assert [(r.refund_id, r.payment_order_id) for r in by_id.refunds] == [(refunds[0], orders[0])]
        failed = pb.ListRefundsRequest(states=[pb.REFUND_STATE_FAILED])
        _window(failed, start, end, "create_time")
        assert not {r.refund_id for r in (await reader.ListRefunds(failed)).refunds} & set(refunds)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await reader.ListRefunds(pb.ListRefundsRequest(payment_order_id=orders[0], refund_id=refunds[0]))
        assert refusal_info(refused.value).reason == "INVALID_FILTER"
    finally:
        await gateway.close()
