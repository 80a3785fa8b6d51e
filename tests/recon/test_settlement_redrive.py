"""SETTLEMENT_NOT_BOOKED is auto-fixed: the payment service's RedriveSettlement emits the order's settlement
again and its consumer applies it under the order's own idempotency keys, so the wallet and the ledger move
exactly once however many times it is asked."""

from __future__ import annotations

import asyncio
import io
import uuid

import grpc
import pytest
import sqlalchemy as sa

from recon_svc.settlement.run import reconcile_file
from svckit.errors import DomainError
from svckit.gen.ledger.v1 import ledger_service_pb2 as lpb
from svckit.gen.ledger.v1 import ledger_service_pb2_grpc as lpb_grpc
from svckit.gen.payments.v1 import payment_service_pb2 as pb
from svckit.gen.payments.v1 import payment_service_pb2_grpc as pb_grpc
from svckit.gen.wallet.v1 import wallet_service_pb2 as wpb
from svckit.gen.wallet.v1 import wallet_service_pb2_grpc as wpb_grpc
from tests.recon import test_settlement_run as base
from tests.recon.test_settlement_run import RULES, _fresh_start, _mismatches, _pay, _report_csv, _settled

recon = base.recon  # the fixture: recon's ports as the ``recon`` identity


async def _flags(services, order: str) -> tuple[bool, bool]:
    async with services["payment"].engine.connect() as conn:
        row = (
            await conn.execute(
                sa.text(
                    "SELECT wallet_updated, ledger_updated FROM payment_orders WHERE payment_order_id = :o"
                ),
                {"o": order},
            )
        ).one()
    return row.wallet_updated, row.ledger_updated


async def _books(channels, seller: str) -> tuple[int, int]:
    """The seller's wallet and its ledger payable (0 before the first movement)."""
    try:
        wallet = (
            await wpb_grpc.WalletServiceStub(channels["wallet"]).GetWallet(
                wpb.GetWalletRequest(seller_id=seller, currency="USD")
            )
        ).wallet.available.amount_minor
    except grpc.aio.AioRpcError:
        wallet = 0
    try:
        payable = (
            await lpb_grpc.LedgerServiceStub(channels["ledger"]).GetBalance(
                lpb.GetBalanceRequest(account=f"liability:seller_payable:{seller}/USD")
            )
        ).balance_minor
    except grpc.aio.AioRpcError:
        payable = 0
    return wallet, payable


async def test_a_success_whose_settlement_never_ran_is_redriven_once_by_the_recon_run(
    shared_psp, services, channels, recon
):
    # The PSP charges the order but the answer and the webhooks are lost (UNKNOWN, nothing settled); the
    # order is then found successful with no settlement event (seeded: the event was never written).
    start = _fresh_start(shared_psp)
    shared_psp.admin.set_faults(
        [
            {
                "kind": "error_after_commit",
                "path_prefix": "/v1/payment_intents",
                "method": "POST",
                "should_retry": False,
            },
            {"kind": "webhook_drop"},
        ]
    )
    try:
        [order] = await _pay(recon, [4000])
    finally:
        shared_psp.admin.clear_faults()
    seller = f"s-{order.split('_')[1]}-0"
    async with services["payment"].engine.begin() as conn:
        await conn.execute(
            sa.text(
                "UPDATE payment_orders SET state = 'SUCCESS', commission_minor = 400 WHERE payment_order_id = :o"
            ),
            {"o": order},
        )
    assert await _books(channels, seller) == (0, 0)

    report = await reconcile_file(
        recon["engine"],
        io.BytesIO(_report_csv(shared_psp, start)),
        recon["records"],
        recon["booker"],
        RULES,
        fixer=recon["records"],
    )
    assert report.state == "SUCCEEDED", report
    assert (report.mismatches_by_code, report.auto_fixed, report.open_by_classification) == (
        {"SETTLEMENT_NOT_BOOKED": 1},
        1,
        {},
    )
    [m] = await _mismatches(recon, report.run_id)
    assert (m.code, m.state, m.our_reference) == ("SETTLEMENT_NOT_BOOKED", "auto_fixed", f"order:{order}")
    await _settled(services, [order])
    assert await _books(channels, seller) == (3600, 3600)

    # Asked again (a retried run, an operator): settled already, nothing moves.
    again = await recon["records"].redrive(order)
    assert again[1] is False and (again[0].wallet_updated, again[0].ledger_updated) == (True, True)
    assert await _books(channels, seller) == (3600, 3600)


async def test_a_redrive_of_a_settlement_applied_already_changes_nothing(services, channels, recon):
    [order] = await _pay(recon, [2500])
    await _settled(services, [order])
    seller = f"s-{order.split('_')[1]}-0"
    books = await _books(channels, seller)
    # The flags are lost (say, a restored backup) while both halves are in the wallet and the ledger.
    async with services["payment"].engine.begin() as conn:
        await conn.execute(
            sa.text("UPDATE payment_orders SET wallet_updated = false WHERE payment_order_id = :o"),
            {"o": order},
        )
    _, redriven = await recon["records"].redrive(order)
    assert redriven
    await _settled(services, [order])  # the consumer replayed the order's keys
    for _ in range(5):  # and nothing moves later either
        assert await _books(channels, seller) == books
        await asyncio.sleep(0.02)


async def test_redrive_refuses_an_unknown_or_uncaptured_order_and_callers_other_than_recon(
    infra, services, channels, recon
):
    stub = pb_grpc.PaymentServiceStub(channels["payment"])  # as the payment identity: not allowed
    with pytest.raises(grpc.aio.AioRpcError) as denied:
        await stub.RedriveSettlement(pb.RedriveSettlementRequest(payment_order_id="po_x"))
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(DomainError) as missing:
        await recon["records"].redrive(f"po_missing_{uuid.uuid4().hex[:6]}")
    assert missing.value.reason == "PAYMENT_ORDER_NOT_FOUND"
    [order] = await _pay(recon, [1234])
    await _settled(
        services, [order]
    )  # the PSP's charge is done: nothing of this test lands in a later one's file
    # Seeded: an order that is not captured has nothing to settle.
    async with services["payment"].engine.begin() as conn:
        await conn.execute(
            sa.text("UPDATE payment_orders SET state = 'FAILED' WHERE payment_order_id = :o"), {"o": order}
        )
    with pytest.raises(DomainError) as refused:
        await recon["records"].redrive(order)
    assert refused.value.reason == "ORDER_NOT_CAPTURED"
