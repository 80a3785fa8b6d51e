"""BatchGetCheckoutOrderColumns, the lean batched read reconciliation matches a chunk of charge rows with: the same
orders and values as BatchGetCheckoutOrders, as columns, and the same refusals."""

from __future__ import annotations

import uuid

import grpc
import pytest

from recon_svc.settlement.classify import OrderState
from recon_svc.settlement.records import GrpcPaymentRecords
from svckit.gen.payments.v1 import payment_service_pb2 as pb
from svckit.gen.payments.v1 import payment_service_pb2_grpc as pb_grpc
from svckit.gen.payments.v1 import payout_service_pb2_grpc as po_grpc
from svckit.grpc_errors import error_info
from tests.recon import test_settlement_run as base
from tests.recon.test_settlement_run import _pay, _settled

recon = base.recon  # the fixture: recon's ports as the ``recon`` identity


async def test_the_columns_answer_the_orders_the_full_read_answers(services, recon, infra):
    first = await _pay(recon, [1200, 800])
    second = await _pay(recon, [500])
    await _settled(services, first + second)
    channel = infra.channel(services["payment"].address, "recon")
    stub = pb_grpc.PaymentServiceStub(channel)
    try:
        checkouts = [f"co_{first[0].split('_')[1]}", f"co_{second[0].split('_')[1]}"]
        unknown = f"co_unknown_{uuid.uuid4().hex}"
        full = await stub.BatchGetCheckoutOrders(
            pb.BatchGetCheckoutOrdersRequest(checkout_ids=[*checkouts, unknown])
        )
        cols = await stub.BatchGetCheckoutOrderColumns(
            pb.BatchGetCheckoutOrderColumnsRequest(checkout_ids=[*checkouts, unknown, checkouts[0]])
        )
        expected = [
            (o.checkout_id, o.payment_order_id, o.psp_reference, o.amount_minor, o.currency, o.state,
             o.create_time.seconds * 1_000_000 + o.create_time.nanos // 1000, o.wallet_updated, o.ledger_updated)
            for o in full.payment_orders
        ]  # fmt: skip
        got = list(
            zip(cols.checkout_ids, cols.payment_order_ids, cols.psp_references, cols.amounts_minor,
                cols.currencies, cols.states, cols.create_times_unix_micros, cols.wallet_updated,
                cols.ledger_updated, strict=True)
        )  # fmt: skip
        assert got == expected
        assert sorted(cols.payment_order_ids) == sorted(first + second)
        assert all(s == pb.PAYMENT_ORDER_STATE_SUCCESS for s in cols.states)
        assert all(r.startswith("pi_") for r in cols.psp_references)

        # recon's reader turns the columns into the same orders the full messages gave
        records = GrpcPaymentRecords(stub, 10, po_grpc.PayoutServiceStub(channel))
        found = await records.checkouts(checkouts)
        assert sorted(found) == sorted(checkouts)
        assert [o.payment_order_id for o in found[checkouts[0]]] == sorted(first)
        order = found[checkouts[0]][0]
        assert order.state is OrderState.SUCCESS and order.wallet_updated and order.ledger_updated
        assert order.amount_minor == 1200 and order.currency == "USD"
        full_first = next(o for o in full.payment_orders if o.payment_order_id == order.payment_order_id)
        assert order.created_at == full_first.create_time.ToDatetime(tzinfo=order.created_at.tzinfo)
    finally:
        await channel.close()


async def test_the_columns_refuse_what_the_full_read_refuses(infra, services):
    channel = infra.channel(services["payment"].address, "recon")
    stub = pb_grpc.PaymentServiceStub(channel)
    try:
        empty = await stub.BatchGetCheckoutOrderColumns(
            pb.BatchGetCheckoutOrderColumnsRequest(checkout_ids=[f"co_unknown_{uuid.uuid4().hex}"])
        )
        assert list(empty.payment_order_ids) == [] and list(empty.states) == []
        for ids, reason in (
            ([f"co_{i}" for i in range(1001)], "TOO_MANY_ITEMS"),
            (["not an id!"], "INVALID_ID"),
            ([], "MISSING_FIELD"),
        ):
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await stub.BatchGetCheckoutOrderColumns(
                    pb.BatchGetCheckoutOrderColumnsRequest(checkout_ids=ids)
                )
            assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert error_info(refused.value).reason == reason
    finally:
        await channel.close()


async def test_only_recon_and_operators_may_read_the_columns(infra, services):
    channel = infra.channel(services["payment"].address, "gateway")
    try:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await pb_grpc.PaymentServiceStub(channel).BatchGetCheckoutOrderColumns(
                pb.BatchGetCheckoutOrderColumnsRequest(checkout_ids=["co_x"])
            )
        assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    finally:
        await channel.close()
