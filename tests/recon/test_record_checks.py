"""Per-record internal checks against the real services: each successful order, succeeded refund and pay-out of
a window has exactly its ledger transaction and wallet movement, and no book item of the window names anything
else. Each test's window spans only its own traffic (tests of a worker run one after another)."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import uuid
from collections.abc import AsyncIterator
from typing import Any, cast

import grpc
import pytest
import pytest_asyncio
import sqlalchemy as sa
from prometheus_client import REGISTRY

from ledger_svc import naming
from recon_svc.books import GrpcLedgerReader, GrpcWalletReader
from recon_svc.check_retries import CheckRetrier
from recon_svc.config import ReconSettings
from recon_svc.record_checks import (
    KEPT,
    BookItem,
    OurRecord,
    RecordChecker,
    RecordCheckReport,
    check_records,
    check_settlement_day,
)
from recon_svc.record_sources import GrpcRecordSources
from recon_svc.service import WalletLedgerReport, compare_wallets_with_ledger
from recon_svc.settlement import nightly
from recon_svc.settlement import tables as t
from recon_svc.settlement.classify import Rules
from recon_svc.settlement.grpc import SettlementDeps
from recon_svc.settlement.records import GrpcPaymentRecords, GrpcSettlementBooker
from recon_svc.settlement.run import RunReport
from svckit.errors import Unavailable
from svckit.gen.common.v1 import money_pb2
from svckit.gen.ledger.v1 import ledger_service_pb2 as lpb
from svckit.gen.ledger.v1 import ledger_service_pb2_grpc as lpb_grpc
from svckit.gen.payments.v1 import payment_service_pb2 as pb
from svckit.gen.payments.v1 import payment_service_pb2_grpc as pb_grpc
from svckit.gen.payments.v1 import payout_service_pb2_grpc as po_grpc
from svckit.gen.recon.v1 import recon_service_pb2 as rpb
from svckit.gen.recon.v1 import recon_service_pb2_grpc as rpb_grpc
from svckit.gen.wallet.v1 import wallet_service_pb2 as wpb
from svckit.gen.wallet.v1 import wallet_service_pb2_grpc as wpb_grpc
from svckit.idempotency import IdempotencyStore
from tests.recon.test_settlement_grpc import _strangers
from tests.recon.test_settlement_run import _pay, _settled

pytestmark = pytest.mark.asyncio


@pytest_asyncio.fixture
async def checker(infra, services) -> AsyncIterator[dict[str, Any]]:
    """The checks over the real services, called as the ``recon`` identity."""
    pay = infra.channel(services["payment"].address, "recon")
    ledger = infra.channel(services["ledger"].address, "recon")
    wallet = infra.channel(services["wallet"].address, "recon")
    gateway = infra.channel(services["payment"].address, "gateway")
    sources = GrpcRecordSources(
        pb_grpc.PaymentServiceStub(pay),
        po_grpc.PayoutServiceStub(pay),
        lpb_grpc.LedgerServiceStub(ledger),
        wpb_grpc.WalletServiceStub(wallet),
        10,
    )
    yield {
        "checker": RecordChecker(services["recon"].engine, sources),
        "records": GrpcPaymentRecords(pb_grpc.PaymentServiceStub(pay), 10, po_grpc.PayoutServiceStub(pay)),
        "booker": GrpcSettlementBooker(lpb_grpc.LedgerServiceStub(ledger), 10),
        "payments": pb_grpc.PaymentServiceStub(gateway),
        "engine": services["recon"].engine,
        "services": services,
        "sources": sources,
        "totals": (
            GrpcWalletReader(wpb_grpc.WalletServiceStub(wallet), 10),
            GrpcLedgerReader(lpb_grpc.LedgerServiceStub(ledger), 10),
        ),
    }
    for chan in (pay, ledger, wallet, gateway):
        await chan.close()


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


async def _check(checker, start: dt.datetime) -> RecordCheckReport:
    await asyncio.sleep(0.05)  # the window ends after the last posting's commit
    return await checker["checker"].check((start, _now()), f"rcn_test_{uuid.uuid4().hex}")


def _found(report: RecordCheckReport) -> set[tuple[str, str, str]]:
    return {(m.code.value, m.classification.value, m.our_reference) for m, _ in report.mismatches}


async def _refunded(channels, checker, order: str, amount: int) -> str:
    """A refund of ``order`` that succeeded and whose wallet debit and ledger posting have landed."""
    refund = (
        await checker["payments"].CreateRefund(
            pb.CreateRefundRequest(payment_order_id=order, amount_minor=amount),
            metadata=[("idempotency-key", uuid.uuid4().hex)],
        )
    ).refund
    ledger = lpb_grpc.LedgerServiceStub(channels["ledger"])
    for _ in range(200):
        listed = await checker["payments"].ListRefunds(pb.ListRefundsRequest(payment_order_id=order))
        posted = await ledger.ListTransactions(lpb.ListTransactionsRequest(external_ref=refund.refund_id))
        if listed.refunds[0].state == pb.REFUND_STATE_SUCCEEDED and posted.transactions:
            return refund.refund_id
        await asyncio.sleep(0.1)
    raise AssertionError(f"refund {refund.refund_id} not settled")


async def test_a_clean_window_of_orders_and_a_refund_has_no_difference(operator_channels, checker):
    start = _now()
    orders = await _pay(checker, [4000, 2500])
    await _settled(checker["services"], orders)
    refund = await _refunded(operator_channels, checker, orders[0], 1000)

    report = await _check(checker, start)

    assert report.mismatches == []
    assert report.records_checked == 3  # two orders and the refund
    # Each order's posting and credit, the refund's posting and debit (and any an earlier test's late settlement
    # posted in the window: explained by a look-up of its order).
    assert report.book_items_checked >= 6, refund


async def test_seeded_faults_are_each_found_with_their_code_and_nothing_else(channels, checker):
    start = _now()
    [paid, lacks_ledger, lacks_wallet] = await _pay(checker, [3000, 2000, 1500])
    await _settled(checker["services"], [paid, lacks_ledger, lacks_wallet])
    tag = uuid.uuid4().hex[:8]
    # Two captured orders whose settlement never ran, then given only one half each.
    no_ledger, no_wallet = f"po_noledger_{tag}", f"po_nowallet_{tag}"
    await _clone_order(checker["services"], lacks_ledger, no_ledger)
    await _clone_order(checker["services"], lacks_wallet, no_wallet)
    seeded = await _sellers_and_commissions(checker["services"], [no_ledger, no_wallet])
    await _credit(
        channels, no_ledger, seeded[no_ledger].seller_account, 2000 - seeded[no_ledger].commission_minor
    )
    await _post_pay_in(channels, no_wallet, seeded[no_wallet].seller_account, 1500)
    # Books naming orders we never had.
    ghost_tx, ghost_movement = f"po_ghost_tx_{tag}", f"po_ghost_mv_{tag}"
    await _post_pay_in(channels, ghost_tx, f"s-ghost-{tag}", 700)
    await _credit(channels, ghost_movement, f"s-ghost-{tag}", 900)

    report = await _check(checker, start)

    assert _found(report) == {
        ("LEDGER_TRANSACTION_MISSING", "manual", f"order:{no_ledger}"),
        ("WALLET_MOVEMENT_MISSING", "manual", f"order:{no_wallet}"),
        ("LEDGER_TRANSACTION_UNEXPECTED", "manual", f"order:{ghost_tx}"),
        ("WALLET_MOVEMENT_UNEXPECTED", "manual", f"order:{ghost_movement}"),
    }
    by_ref = {m.our_reference: m for m, _ in report.mismatches}
    missing = by_ref[f"order:{no_ledger}"]
    assert (missing.currency, missing.amount_minor) == ("USD", 2000)
    [diff] = missing.differences
    assert diff.theirs == "no transaction" and "ledger_updated=true" in diff.ours
    [ghost] = by_ref[f"order:{ghost_movement}"].differences
    assert (ghost.field, ghost.ours) == ("order", "absent")
    # Each is in the exceptions queue, open, under the run that asked.
    async with checker["engine"].connect() as conn:
        stored = (
            await conn.execute(
                sa.select(t.mismatches.c.code, t.mismatches.c.state, t.mismatches.c.our_reference).where(
                    t.mismatches.c.mismatch_id.in_([mid for _, mid in report.mismatches])
                )
            )
        ).all()
    assert {(r.code, r.state, r.our_reference) for r in stored} == {
        (code, "open", ref) for code, _, ref in _found(report)
    }


async def test_a_posting_of_another_amount_and_a_movement_of_another_currency_are_each_found(
    channels, checker
):
    # Two captured orders whose settlement was seeded by hand: one posted with 10 less than the order, one whose
    # seller share went into the seller's EUR wallet. The window's real orders agree in amount and currency.
    start = _now()
    [paid, off_amount, off_currency] = await _pay(checker, [3000, 2000, 1500])
    await _settled(checker["services"], [paid, off_amount, off_currency])
    tag = uuid.uuid4().hex[:8]
    posted_off, moved_off = f"po_offamount_{tag}", f"po_offcurrency_{tag}"
    await _clone_order(checker["services"], off_amount, posted_off)
    await _clone_order(checker["services"], off_currency, moved_off)
    orders = await _sellers_and_commissions(checker["services"], [posted_off, moved_off])
    a, c = orders[posted_off], orders[moved_off]
    await _post_pay_in(channels, posted_off, a.seller_account, 1990)
    await _credit(channels, posted_off, a.seller_account, 2000 - a.commission_minor)
    await _post_pay_in(channels, moved_off, c.seller_account, 1500)
    await _credit(channels, moved_off, c.seller_account, 1500 - c.commission_minor, currency="EUR")

    report = await _check(checker, start)

    assert _found(report) == {
        ("LEDGER_TRANSACTION_DIFFERS", "manual", f"order:{posted_off}"),
        ("WALLET_MOVEMENT_DIFFERS", "manual", f"order:{moved_off}"),
    }
    by_ref = {m.our_reference: m for m, _ in report.mismatches}
    amount = by_ref[f"order:{posted_off}"]
    assert (amount.currency, amount.amount_minor) == ("USD", -10)
    assert [(d.field, d.ours, d.theirs) for d in amount.differences][1:] == [("amount_minor", "2000", "1990")]
    currency = by_ref[f"order:{moved_off}"]
    assert [(d.field, d.ours, d.theirs) for d in currency.differences][1:] == [("currency", "USD", "EUR")]


async def test_a_refunds_movement_beyond_the_refund_and_a_payouts_movement_for_another_seller_differ(
    services,
):
    # In memory: a refund's movement may be less than the refund (commission given back, a seller's debt) but
    # never more; a pay-out's every step must be its seller's and currency; an agreeing pay-out is no difference.
    tag = uuid.uuid4().hex[:8]
    refund, payout, fine = f"re_{tag}", f"pyt_{tag}", f"pyt_fine_{tag}"
    sources = _Sources(
        records=[
            OurRecord("refund", refund, "", "USD", 1000, parent="po_x"),
            OurRecord("payout", payout, "s-1", "USD", 5000),
            OurRecord("payout", fine, "s-1", "USD", 5000),
        ],
        ledger=[
            BookItem("refund", refund, "1", "USD", 1000),
            BookItem("payout", payout, "2", "USD", 5000),
            BookItem("payout", fine, "3", "USD", 5000),
            BookItem("payout", fine, "4", "USD", 4900),
        ],
        wallet=[
            BookItem("refund", refund, "m1", "USD", 1001, seller="s-0"),
            BookItem("payout", payout, "m2", "USD", 5000, seller="s-1"),
            BookItem("payout", payout, "m3", "USD", 5000, seller="s-2"),
            BookItem("payout", fine, "m4", "USD", 5000, seller="s-1"),
            BookItem("payout", fine, "m5", "USD", 5000, seller="s-1"),
        ],
    )
    report = await check_records(services["recon"].engine, sources, _WINDOW, f"rcn_test_{tag}")
    assert _found(report) == {
        ("WALLET_MOVEMENT_DIFFERS", "manual", f"refund:{refund}"),
        ("WALLET_MOVEMENT_DIFFERS", "manual", f"payout:{payout}"),
    }
    by_ref = {m.our_reference: m for m, _ in report.mismatches}
    assert [(d.field, d.ours, d.theirs) for d in by_ref[f"refund:{refund}"].differences][1:] == [
        ("amount_minor", "at most 1000", "1001")
    ]
    assert [(d.field, d.ours, d.theirs) for d in by_ref[f"payout:{payout}"].differences] == [
        ("wallet_movement", f"payout {payout}", "wallet movement m3"),
        ("seller", "s-1", "s-2"),
    ]


async def test_a_record_booked_just_outside_the_window_is_no_difference(channels, checker):
    # The order is created inside the window but the window ends before its books; a look-up by reference
    # finds them, so nothing is reported.
    start = _now()
    [order] = await _pay(checker, [1800])
    await _settled(checker["services"], [order])
    async with checker["services"]["payment"].engine.connect() as conn:
        created = await conn.scalar(
            sa.text("SELECT created_at FROM payment_orders WHERE payment_order_id = :o"), {"o": order}
        )
    report = await checker["checker"].check((start, created + dt.timedelta(microseconds=1)), "rcn_edge")
    assert report.mismatches == [] and report.records_checked == 1


async def test_the_recon_rpc_runs_the_checks_of_a_window_and_refuses_a_half_window(
    channels, operator_channels, checker
):
    start = _now()
    [order] = await _pay(checker, [2200])
    await _settled(checker["services"], [order])
    ghost = f"po_ghost_rpc_{uuid.uuid4().hex[:8]}"
    await _post_pay_in(channels, ghost, f"s-ghost-{ghost}", 500)
    await asyncio.sleep(0.05)
    stub = rpb_grpc.ReconServiceStub(operator_channels["recon"])
    request = rpb.CompareWalletsWithLedgerRequest(seller_id="no-such-seller")
    request.interval_start_time.FromDatetime(start)
    request.interval_end_time.FromDatetime(_now())

    reply = await stub.CompareWalletsWithLedger(request)

    assert not reply.ok and reply.records_checked == 1 and reply.record_mismatch_count == 1
    assert [(m.code, m.our_reference) for m in reply.record_mismatches] == [
        ("LEDGER_TRANSACTION_UNEXPECTED", f"order:{ghost}")
    ]
    got = await stub.GetMismatch(rpb.GetMismatchRequest(mismatch_id=reply.record_mismatches[0].mismatch_id))
    assert got.mismatch.run_id == reply.run_id and got.mismatch.state == "open"

    half = rpb.CompareWalletsWithLedgerRequest()
    half.interval_start_time.FromDatetime(start)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.CompareWalletsWithLedger(half)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "interval_end_time" in (refused.value.details() or "")


async def _clone_order(services, order: str, new_id: str) -> None:
    """A captured order of ours whose settlement never ran (seeded: a copy of a real order under a new id, its
    flags saying settled), so it has neither a ledger transaction nor a wallet movement."""
    async with services["payment"].engine.begin() as conn:
        await conn.execute(
            sa.text(
                "CREATE TEMPORARY TABLE clone ON COMMIT DROP AS SELECT * FROM payment_orders WHERE payment_order_id = :o"
            ),
            {"o": order},
        )
        await conn.execute(
            sa.text("UPDATE clone SET payment_order_id = :n, psp_reference = NULL, wallet_updated = true,"
                    " ledger_updated = true"),
            {"n": new_id},
        )  # fmt: skip
        await conn.execute(sa.text("INSERT INTO payment_orders SELECT * FROM clone"))


async def _sellers_and_commissions(services, orders: list[str]) -> dict[str, Any]:
    """Each order's seller and commission, as its settlement books them."""
    async with services["payment"].engine.connect() as conn:
        rows = await conn.execute(
            sa.text("SELECT payment_order_id, seller_account, commission_minor FROM payment_orders"
                    " WHERE payment_order_id = ANY(:ids)"),
            {"ids": orders},
        )  # fmt: skip
        return {r.payment_order_id: r for r in rows}


async def _post_pay_in(channels, order: str, seller: str, amount: int) -> None:
    """The ledger half of an order's settlement, as the payment service posts it."""
    await lpb_grpc.LedgerServiceStub(channels["ledger"]).PostTransaction(
        lpb.PostTransactionRequest(
            entries=[
                lpb.Entry(
                    account=naming.psp_receivable("stripe", "USD"),
                    direction=lpb.DIRECTION_DEBIT,
                    amount_minor=amount,
                    currency="USD",
                ),
                lpb.Entry(
                    account=naming.seller_payable(seller, "USD"),
                    direction=lpb.DIRECTION_CREDIT,
                    amount_minor=amount,
                    currency="USD",
                ),
            ],
            description=f"pay-in {order} of checkout seeded",
            external_ref=order,
            metadata={"source": "payment_svc", "reference": order},
        ),
        metadata=[("idempotency-key", uuid.uuid4().hex)],
    )


async def _credit(channels, order: str, seller: str, amount: int, currency: str = "USD") -> None:
    """The wallet half of an order's settlement."""
    await wpb_grpc.WalletServiceStub(channels["wallet"]).Credit(
        wpb.CreditRequest(
            seller_id=seller,
            amount=money_pb2.Money(amount_minor=amount, currency=currency),
            reference=wpb.Reference(kind=wpb.REFERENCE_KIND_PAYMENT_ORDER, id=order),
        ),
        metadata=[("idempotency-key", uuid.uuid4().hex)],
    )


async def test_a_days_settlement_run_ends_with_the_internal_checks_of_that_day(
    channels, operator_channels, checker, monkeypatch
):
    # The PSP's file of the day (one row of a charge we never made), and a ledger transaction of that day
    # naming an order we never had (which also leaves its seller's payable without a wallet): the run reports
    # all three, under its one run id.
    ghost = f"po_ghost_day_{uuid.uuid4().hex[:8]}"
    await _post_pay_in(channels, ghost, f"s-ghost-{ghost}", 600)
    monkeypatch.setattr(nightly, "fetch_report", lambda *args, **kwargs: io.BytesIO(_strangers(1)))
    services = checker["services"]
    recon = services["recon"]
    deps = SettlementDeps(
        recon.engine, cast(IdempotencyStore, None), checker["records"], checker["booker"],
        Rules(fee_tolerance_minor=0), cast(ReconSettings, recon.settings),
        RecordChecker(recon.engine, checker["sources"], totals=lambda: compare_wallets_with_ledger(*checker["totals"])),
    )  # fmt: skip

    report = await nightly.reconcile_day(deps, _now().date())

    assert report.state == "SUCCEEDED"
    assert report.mismatches_by_code.get("UNMATCHED_ROW") == 1
    assert report.mismatches_by_code.get("LEDGER_TRANSACTION_UNEXPECTED", 0) >= 1
    listed = await rpb_grpc.ReconServiceStub(operator_channels["recon"]).ListMismatches(
        rpb.ListMismatchesRequest(run_id=report.run_id, code="LEDGER_TRANSACTION_UNEXPECTED", page_size=500)
    )
    assert f"order:{ghost}" in {m.our_reference for m in listed.mismatches}
    async with recon.engine.connect() as conn:
        stored = await conn.scalar(sa.select(t.runs.c.report).where(t.runs.c.run_id == report.run_id))
    assert stored["internal_checks"]["mismatches"] >= 2
    assert stored["internal_checks"]["wallets_checked"] >= 1
    assert stored["mismatches_by_code"]["LEDGER_TRANSACTION_UNEXPECTED"] >= 1
    totals = await rpb_grpc.ReconServiceStub(operator_channels["recon"]).ListMismatches(
        rpb.ListMismatchesRequest(run_id=report.run_id, code="WALLET_LEDGER_DIFFERS", page_size=500)
    )
    [payable] = [m for m in totals.mismatches if m.our_reference == f"seller:s-ghost-{ghost}/USD"]
    assert (payable.classification, payable.amount_minor) == ("manual", -600)
    assert [(d.field, d.ours, d.theirs) for d in payable.differences] == [
        ("balance_minor (wallet_missing)", "0", "600")
    ]


class _Sources:
    """Sources of the check given in memory (the recon database is real): records, book items, and what a
    look-up by reference answers."""

    def __init__(self, records=(), ledger=(), wallet=(), booked: int = 0) -> None:
        self._records, self._ledger, self._wallet, self._booked = records, ledger, wallet, booked

    async def records(self, window):
        for r in self._records:
            yield r

    async def ledger_items(self, window):
        for i in self._ledger:
            yield i

    async def wallet_items(self, window):
        for i in self._wallet:
            yield i

    async def ledger_count(self, record):
        return self._booked

    async def wallet_count(self, record):
        return self._booked

    async def record(self, kind, ref):
        return None


_WINDOW = (dt.datetime(2026, 11, 20, tzinfo=dt.UTC), dt.datetime(2026, 11, 21, tzinfo=dt.UTC))


async def test_a_reversal_or_an_undo_cancels_what_it_undoes_and_a_second_booking_is_unexpected(services):
    tag = uuid.uuid4().hex[:8]
    undone, twice = f"po_undone_{tag}", f"po_twice_{tag}"
    sources = _Sources(
        records=[OurRecord("order", undone, "s", "USD", 500), OurRecord("order", twice, "s", "USD", 700)],
        ledger=[
            BookItem("order", undone, "1", "USD", 500),
            BookItem("order", undone, "2", "USD", 500, cancels="1"),  # its reversal
            BookItem("order", twice, "3", "USD", 700),
            BookItem("order", twice, "4", "USD", 700),
        ],
        wallet=[
            BookItem("order", undone, "m1", "USD", 450),
            BookItem("order", undone, "m2", "USD", 450, cancels="*"),  # the undo adjustment
            BookItem("order", twice, "m3", "USD", 630, seller="s"),
        ],
    )
    report = await check_records(services["recon"].engine, sources, _WINDOW, f"rcn_test_{tag}")
    assert _found(report) == {
        ("LEDGER_TRANSACTION_MISSING", "manual", f"order:{undone}"),
        ("WALLET_MOVEMENT_MISSING", "manual", f"order:{undone}"),
        ("LEDGER_TRANSACTION_UNEXPECTED", "manual", f"order:{twice}"),
    }
    [extra] = [m for m, _ in report.mismatches if m.our_reference == f"order:{twice}"]
    assert [(d.field, d.ours, d.theirs) for d in extra.differences] == [("ledger_transactions", "1", "2")]


async def test_a_broken_day_keeps_the_first_mismatches_and_counts_them_all(services):
    tag = uuid.uuid4().hex[:8]
    strangers = [BookItem("order", f"po_{tag}_{i}", str(i), "USD", 100) for i in range(KEPT + 5)]
    report = await check_records(services["recon"].engine, _Sources(ledger=strangers), _WINDOW, f"rcn_{tag}")
    assert len(report.mismatches) == KEPT
    assert report.mismatch_count == KEPT + 5
    assert report.by_code == {"LEDGER_TRANSACTION_UNEXPECTED": KEPT + 5}
    async with services["recon"].engine.connect() as conn:
        stored = await conn.scalar(
            sa.select(sa.func.count()).select_from(t.mismatches).where(t.mismatches.c.run_id == f"rcn_{tag}")
        )
    assert stored == KEPT + 5


class _Unreachable(_Sources):
    async def ledger_items(self, window):
        raise Unavailable("UPSTREAM_UNAVAILABLE", "the ledger did not answer")
        yield


async def test_internal_checks_that_fail_leave_the_days_settlement_run_standing(services):
    tag = uuid.uuid4().hex[:8]
    run = RunReport(run_id=f"rr_test_{tag}", state="SUCCEEDED", mismatches_by_code={"UNMATCHED_ROW": 1})
    engine = services["recon"].engine
    async with engine.begin() as conn:
        await conn.execute(
            t.runs.insert().values(
                run_id=run.run_id,
                state="SUCCEEDED",
                kind="SETTLEMENT_FILE",
                report=run.as_dict(),
                finished_at=sa.func.now(),
            )
        )
    failed_before = REGISTRY.get_sample_value("recon_internal_checks_failed_total") or 0

    checks = await check_settlement_day(engine, RecordChecker(engine, _Unreachable()), run, _WINDOW)

    assert checks is None
    assert run.mismatches_by_code == {"UNMATCHED_ROW": 1}
    async with engine.connect() as conn:
        stored = (
            await conn.execute(
                sa.select(t.runs.c.state, t.runs.c.report).where(t.runs.c.run_id == run.run_id)
            )
        ).one()
    assert stored.state == "SUCCEEDED"
    assert stored.report["internal_checks"] == {
        "error": "UPSTREAM_UNAVAILABLE",
        "attempts": 1,
        "retry": "scheduled",
    }
    assert stored.report["mismatches_by_code"] == {"UNMATCHED_ROW": 1}
    assert REGISTRY.get_sample_value("recon_internal_checks_failed_total") == failed_before + 1
    async with engine.begin() as conn:
        queued = (
            await conn.execute(sa.select(t.check_retries).where(t.check_retries.c.run_id == run.run_id))
        ).one()
        # This test's run is not for the other tests' retriers (nor the service's) to run again.
        await conn.execute(t.check_retries.delete().where(t.check_retries.c.run_id == run.run_id))
    assert (queued.state, queued.attempts, queued.last_error) == ("failed", 1, "UPSTREAM_UNAVAILABLE")
    assert (queued.window_start, queued.window_end) == _WINDOW


async def _settlement_run(engine, tag: str) -> RunReport:
    """A settlement run of the day that succeeded with one unmatched row, stored as the day's run stores it."""
    run = RunReport(run_id=f"rr_test_{tag}", state="SUCCEEDED", mismatches_by_code={"UNMATCHED_ROW": 1})
    run.open_by_classification = {"unclassified": 1}
    async with engine.begin() as conn:
        await conn.execute(
            t.runs.insert().values(
                run_id=run.run_id, state="SUCCEEDED", kind="SETTLEMENT_FILE", report=run.as_dict(),
                finished_at=sa.func.now(),
            )
        )  # fmt: skip
    return run


async def _stored(engine, run_id: str) -> tuple[dict[str, Any], list[Any], Any]:
    """The run's stored report, its mismatches, and its row in the retry queue."""
    async with engine.connect() as conn:
        report = await conn.scalar(sa.select(t.runs.c.report).where(t.runs.c.run_id == run_id))
        queued = (await conn.execute(sa.select(t.mismatches).where(t.mismatches.c.run_id == run_id))).all()
        retry = (
            await conn.execute(sa.select(t.check_retries).where(t.check_retries.c.run_id == run_id))
        ).one()
    return report, queued, retry


async def test_end_of_run_checks_that_failed_are_retried_and_their_results_recorded_once(services):
    # The first attempt queues the per-record mismatches, then the wallets-against-ledger comparison fails (the
    # wallet service away); the retry after the back-off passes. Each mismatch is queued and counted once.
    tag = uuid.uuid4().hex[:8]
    engine = services["recon"].engine
    run = await _settlement_run(engine, tag)
    order = f"po_unbooked_{tag}"
    calls = 0

    async def totals() -> WalletLedgerReport:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise Unavailable("UPSTREAM_UNAVAILABLE", "the wallet service did not answer")
        return WalletLedgerReport(wallets_checked=3, accounts_checked=3, mismatches=[])

    checker = RecordChecker(
        engine, _Sources(records=[OurRecord("order", order, "s", "USD", 500)]), totals=totals
    )
    passed_before = (
        REGISTRY.get_sample_value("recon_internal_checks_retried_total", {"outcome": "passed"}) or 0
    )

    assert await check_settlement_day(engine, checker, run, _WINDOW) is None
    report, queued, retry = await _stored(engine, run.run_id)
    assert report["internal_checks"]["error"] == "UPSTREAM_UNAVAILABLE"
    assert report["mismatches_by_code"] == {"UNMATCHED_ROW": 1}  # nothing counted from a failed attempt
    assert len(queued) == 2 and (retry.state, retry.attempts) == ("failed", 1)
    first_ids = {m.mismatch_id for m in queued}

    retrier = CheckRetrier(
        engine, checker, retry=dt.timedelta(seconds=1), retry_max=dt.timedelta(seconds=4),
        lease=dt.timedelta(minutes=5), clock=lambda: _now() + dt.timedelta(hours=1),
    )  # fmt: skip
    outcomes = await retrier.tick()

    assert outcomes[run.run_id] == "passed"
    report, queued, retry = await _stored(engine, run.run_id)
    assert sorted((m.code, m.our_reference) for m in queued) == [
        ("LEDGER_TRANSACTION_MISSING", f"order:{order}"),
        ("WALLET_MOVEMENT_MISSING", f"order:{order}"),
    ]
    assert {m.mismatch_id for m in queued} == first_ids
    assert report["mismatches_by_code"] == {
        "UNMATCHED_ROW": 1, "LEDGER_TRANSACTION_MISSING": 1, "WALLET_MOVEMENT_MISSING": 1,
    }  # fmt: skip
    assert report["open_by_classification"] == {"unclassified": 1, "manual": 2}
    assert report["internal_checks"] == {
        "records_checked": 1, "book_items_checked": 0, "mismatches": 2, "wallets_checked": 3,
        "accounts_checked": 3, "attempts": 2,
    }  # fmt: skip
    assert (retry.state, retry.attempts, retry.last_error) == ("done", 2, None)
    assert (
        REGISTRY.get_sample_value("recon_internal_checks_retried_total", {"outcome": "passed"})
        == passed_before + 1
    )
    assert run.run_id not in await retrier.tick()  # done: never run again


async def test_end_of_run_checks_still_failing_at_the_back_offs_cap_are_abandoned_with_an_alert(services):
    tag = uuid.uuid4().hex[:8]
    engine = services["recon"].engine
    run = await _settlement_run(engine, tag)
    checker = RecordChecker(engine, _Unreachable())
    assert await check_settlement_day(engine, checker, run, _WINDOW) is None
    start = _now()
    at = start
    retrier = CheckRetrier(
        engine, checker, retry=dt.timedelta(seconds=10), retry_max=dt.timedelta(seconds=20),
        lease=dt.timedelta(minutes=5), clock=lambda: at,
    )  # fmt: skip
    abandoned_before = (
        REGISTRY.get_sample_value("recon_internal_checks_retried_total", {"outcome": "abandoned"}) or 0
    )

    at = start + dt.timedelta(seconds=11)  # the first back-off (10 s) is over
    assert (await retrier.tick())[run.run_id] == "failed"
    assert run.run_id not in await retrier.tick()  # the next back-off (20 s, the cap) is not over
    at = start + dt.timedelta(seconds=32)
    assert (await retrier.tick())[run.run_id] == "abandoned"  # it waited the cap and still fails

    report, queued, retry = await _stored(engine, run.run_id)
    assert (retry.state, retry.attempts, retry.last_error) == ("abandoned", 3, "UPSTREAM_UNAVAILABLE")
    assert report["internal_checks"] == {"error": "UPSTREAM_UNAVAILABLE", "attempts": 3, "retry": "abandoned"}
    assert report["mismatches_by_code"] == {"UNMATCHED_ROW": 1} and queued == []
    assert (
        REGISTRY.get_sample_value("recon_internal_checks_retried_total", {"outcome": "abandoned"})
        == abandoned_before + 1
    )
    at = start + dt.timedelta(days=1)
    assert run.run_id not in await retrier.tick()  # abandoned: left for a person (CompareWalletsWithLedger)
