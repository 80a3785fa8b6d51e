"""A settlement run against the real payment, ledger and recon services and the simulator's report (stripe SDK).

Payments go through the payment service (direct mode, as the gateway calls it: one PaymentIntent, so one charge
row, per cart whatever its number of sellers); the PSP's itemized balance-change report for exactly the test's interval is fetched through the SDK's Reporting API (report run → file).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import json
import os
import subprocess
import sys
import uuid
from typing import Any

import grpc
import httpx
import pytest
import pytest_asyncio
import sqlalchemy as sa

from psp_sim.testing import DEFAULT_API_KEY
from recon_svc.settlement import tables as t
from recon_svc.settlement.classify import Rules
from recon_svc.settlement.records import GrpcPaymentRecords, GrpcSettlementBooker
from recon_svc.settlement.run import RunReport, reconcile_file
from svckit.gen.ledger.v1 import ledger_service_pb2 as lpb
from svckit.gen.ledger.v1 import ledger_service_pb2_grpc as lpb_grpc
from svckit.gen.payments.v1 import payment_service_pb2 as pb
from svckit.gen.payments.v1 import payment_service_pb2_grpc as pb_grpc
from svckit.gen.payments.v1 import payout_service_pb2_grpc as po_grpc
from svckit.testing import refusal_info

REPORT = "balance_change_from_activity.itemized.3"
COLUMNS = [
    "balance_transaction_id", "created_utc", "currency", "gross", "fee", "net", "reporting_category", "source_id",
    "charge_id", "payment_intent_id", "payment_metadata[checkout_id]", "refund_metadata[refund_id]",
]  # fmt: skip
# The simulator's processing fee: 2.9 % rounded half up + 30 minor units (psp_sim/config.py).
RULES = Rules(fee_tolerance_minor=2, expected_fee_bps=290, expected_fee_fixed_minor=30)


@pytest_asyncio.fixture
async def recon(infra, services):
    """The recon service's ports, called as the ``recon`` identity, and its database."""
    pay = infra.channel(services["payment"].address, "recon")
    ledger = infra.channel(services["ledger"].address, "recon")
    gateway = infra.channel(services["payment"].address, "gateway")
    yield {
        "records": GrpcPaymentRecords(pb_grpc.PaymentServiceStub(pay), 10, po_grpc.PayoutServiceStub(pay)),
        "booker": GrpcSettlementBooker(lpb_grpc.LedgerServiceStub(ledger), 10),
        "engine": services["recon"].engine,
        "payments": pb_grpc.PaymentServiceStub(gateway),
        "payout_channel": pay,
    }
    for chan in (pay, ledger, gateway):
        await chan.close()


async def _pay(recon, amounts: list[int]) -> list[str]:
    """One cart (checkout ``co_<tag>``) with an order per amount, each of its own seller; its order ids."""
    run = uuid.uuid4().hex[:8]
    orders = [f"po_{run}_{i}" for i in range(len(amounts))]
    await recon["payments"].CreatePayment(
        pb.CreatePaymentRequest(
            checkout_id=f"co_{run}",
            buyer=pb.BuyerInfo(buyer_id=f"buyer-recon-{run}"),
            payment_orders=[
                pb.PaymentOrderInput(
                    payment_order_id=o, seller_account=f"s-{run}-{i}", amount_minor=a, currency="USD"
                )
                for i, (o, a) in enumerate(zip(orders, amounts, strict=True))
            ],
            payment_method="pm_card_visa",
        ),
        metadata=[("idempotency-key", uuid.uuid4().hex)],
    )
    return orders


async def _settled(services, orders: list[str]) -> None:
    for _ in range(200):
        async with services["payment"].engine.connect() as conn:
            done = await conn.scalar(
                sa.text(
                    "SELECT count(*) FROM payment_orders WHERE payment_order_id = ANY(:ids)"
                    " AND wallet_updated AND ledger_updated"
                ),
                {"ids": orders},
            )
        if done == len(orders):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"only {done}/{len(orders)} orders settled")


def _report_csv(sim, start: int) -> bytes:
    """The report run for [start, now) through the SDK, and its file fetched with the API key."""
    sim.admin.advance(seconds=2)  # interval_end may not be in the future
    client = sim.client()
    run = client.v1.reporting.report_runs.create(
        params={
            "report_type": REPORT,
            "parameters": {"interval_start": start, "interval_end": sim.admin.now(), "columns": COLUMNS},
        }
    )
    assert run.status == "succeeded"
    reply = httpx.get(run.result.url, headers={"Authorization": f"Bearer {DEFAULT_API_KEY}"})
    reply.raise_for_status()
    return reply.content


def _fresh_start(sim) -> int:
    """The start of a test's own interval: the simulator's clock has whole seconds, so it moves on one first,
    and rows an earlier test made in the current second stay out of this test's file."""
    sim.admin.advance(seconds=1)
    return sim.admin.now()


async def _receivable(channels) -> int:
    """``asset:psp_receivable:stripe/USD``; 0 before the session's first success opens it."""
    try:
        reply = await lpb_grpc.LedgerServiceStub(channels["ledger"]).GetBalance(
            lpb.GetBalanceRequest(account="asset:psp_receivable:stripe/USD")
        )
    except grpc.aio.AioRpcError as exc:
        assert refusal_info(exc).reason == "ACCOUNT_NOT_FOUND"
        return 0
    return reply.balance_minor


async def _run(recon, data: bytes, **kwargs: Any) -> RunReport:
    return await reconcile_file(
        recon["engine"], io.BytesIO(data), recon["records"], recon["booker"], RULES, **kwargs
    )


async def _mismatches(recon, run_id: str) -> list[Any]:
    async with recon["engine"].connect() as conn:
        rows = await conn.execute(sa.select(t.mismatches).where(t.mismatches.c.run_id == run_id))
        return list(rows)


def _checkout(orders: list[str]) -> str:
    return "co_" + orders[0].split("_")[1]


async def _day(shared_psp, services, recon, carts: list[list[int]]) -> tuple[list[list[str]], bytes]:
    """Pay each cart (one after the other, so the file lists their charges in that order) and fetch the file."""
    start = _fresh_start(shared_psp)
    paid = [await _pay(recon, amounts) for amounts in carts]
    await _settled(services, [o for orders in paid for o in orders])
    return paid, _report_csv(shared_psp, start)


async def test_a_day_of_real_traffic_reconciles_and_books_once(shared_psp, services, channels, recon):
    before = await _receivable(channels)
    # A three-seller cart is ONE PaymentIntent, so one charge row; a one-seller cart is another.
    [cart, _], data = await _day(shared_psp, services, recon, [[1000, 2550, 450], [700]])
    assert await _receivable(channels) - before == 4700  # our successes: Dr psp_receivable

    report = await _run(recon, data)
    assert report.state == "SUCCEEDED", report
    assert (report.rows_read, report.matched, report.booked) == (2, 2, 2)
    assert report.mismatches_by_code == {}
    assert await _mismatches(recon, report.run_id) == []
    # The PSP settled both charges: the receivable for them is back to zero, net and fees in bank and expense.
    assert await _receivable(channels) == before
    # The fee is the charge's: 2.9 % of 40.00 + 0.30 for the cart, 2.9 % of 7.00 + 0.30 for the other.
    assert report.booked_totals == {"USD": {"gross": 4700, "fee": 116 + 30 + 20 + 30}}
    async with recon["engine"].connect() as conn:
        refs = set((await conn.execute(
            sa.select(t.rows.c.our_reference).where(t.rows.c.run_id == report.run_id)
        )).scalars())  # fmt: skip
    assert f"checkout:{_checkout(cart)}" in refs

    again = await _run(recon, data)
    assert again.state == "DUPLICATE_FILE" and again.booked == 0
    assert await _receivable(channels) == before


async def test_an_overlapping_file_counts_each_row_once(shared_psp, services, channels, recon):
    before = await _receivable(channels)
    _, first = await _day(shared_psp, services, recon, [[700]])
    await _run(recon, first)
    _, second = await _day(shared_psp, services, recon, [[800]])
    # The next day's file repeats yesterday's rows (another interval, so another file and hash).
    rows = first.decode().splitlines()[1:]
    overlapping = (second.decode() + "\n".join(rows) + "\n").encode()
    report = await _run(recon, overlapping)
    assert (report.state, report.booked, report.already_counted) == ("SUCCEEDED", 1, 1)
    assert report.mismatches_by_code == {}
    assert await _receivable(channels) == before


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"", "empty"),
        (b"payout_id,currency,gross\npo_1,usd,1.00\n", "missing column"),
        (b"balance_transaction_id;created_utc;currency;gross;fee;net;reporting_category;source_id\n", "delimited"),
        (b"\xff\xfe\x00garbage" * 1000, "UTF-8"),
    ],
)  # fmt: skip
async def test_a_bad_file_fails_the_run_and_books_nothing(channels, recon, data, error):
    before = await _receivable(channels)
    report = await _run(recon, data)
    assert report.state == "FAILED" and error in report.error
    assert await _receivable(channels) == before


async def test_malformed_rows_fail_the_run_with_their_lines_and_book_nothing(
    shared_psp, services, channels, recon
):
    _, data = await _day(shared_psp, services, recon, [[1200], [1300]])
    header, good, bad = data.decode().splitlines()
    cols = header.split(",")
    cells = bad.split(",")
    cells[cols.index("gross")] = "13.001"
    before = await _receivable(channels)
    report = await _run(recon, "\n".join([header, good, ",".join(cells)]).encode() + b"\n")
    assert report.state == "FAILED" and report.booked == 0
    assert report.row_errors == [
        {
            "line": 3,
            "reason": "AMOUNT_PRECISION_EXCEEDED",
            "message": "gross '13.001' has 3 decimals; USD has 2",
        }
    ]
    assert await _receivable(channels) == before


async def test_our_success_missing_from_the_file_is_pending_then_missing(shared_psp, services, recon):
    t0 = dt.datetime.now(dt.UTC)  # no slack: the previous test's orders are a moment older
    (kept_cart, dropped_cart), data = await _day(shared_psp, services, recon, [[1500], [1600, 400]])
    window = (t0, dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1))
    header, first, second = data.decode().splitlines()
    kept, dropped = (first, second) if _checkout(kept_cart) in first else (second, first)
    assert _checkout(dropped_cart) in dropped

    today = await _run(recon, f"{header}\n{kept}\n".encode(), expected_window=window)
    assert (today.state, today.pending, today.mismatches_by_code) == ("SUCCEEDED", 2, {})

    # Three days on, the grace period (2 days) is over: the same absence is a break. The next file has no
    # row for it (a column of its own makes its content, so its hash, new).
    empty = f"{header},payment_metadata[probe_{uuid.uuid4().hex[:8]}]\n".encode()
    later = await _run(
        recon, empty, expected_window=window, now=dt.datetime.now(dt.UTC) + dt.timedelta(days=3)
    )
    # One mismatch per order of the missing cart: each is a seller's money.
    assert (later.state, later.pending, later.mismatches_by_code) == ("SUCCEEDED", 0, {"MISSING_FROM_PSP": 2})
    found = sorted(
        (m.our_reference, m.classification, m.amount_minor) for m in await _mismatches(recon, later.run_id)
    )
    assert found == [
        (f"order:{dropped_cart[0]}", "manual", 1600),
        (f"order:{dropped_cart[1]}", "manual", 400),
    ]


def _cli(infra, services, shared_psp, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "DATABASE_URL": infra.database_url,
        "REDIS_URL": infra.redis_url,
        "RECON_DATABASE_NAME": services["recon"].settings.database_name,
        "RECON_PAYMENT_ADDR": services["payment"].address,
        "RECON_LEDGER_ADDR": services["ledger"].address,
        "RECON_PSP_BASE_URL": shared_psp.base_url,
        "RECON_PSP_API_KEY": DEFAULT_API_KEY,
        "LOG_FORMAT": "json",
        **infra.tls_env("recon"),
    }
    return subprocess.run(
        [sys.executable, "-m", "recon_svc", "run", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


async def test_the_cli_fetches_a_day_from_the_psp_and_prints_the_report(infra, services, shared_psp, recon):
    # The simulator's clock is ahead of ours (tests advance it); its "yesterday" is the day to fetch.
    yesterday = dt.datetime.fromtimestamp(shared_psp.admin.now(), dt.UTC).date() - dt.timedelta(days=1)
    done = await asyncio.to_thread(
        _cli, infra, services, shared_psp, "--date", yesterday.isoformat(), "--json"
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["state"] in ("SUCCEEDED", "DUPLICATE_FILE")
    assert DEFAULT_API_KEY not in done.stdout + done.stderr


async def test_the_cli_refuses_a_bad_file_with_its_reason(infra, services, shared_psp, tmp_path):
    bad = tmp_path / "report.csv"
    bad.write_bytes(
        b"balance_transaction_id;created_utc;currency;gross;fee;net;reporting_category;source_id\n"
    )
    done = await asyncio.to_thread(_cli, infra, services, shared_psp, "--file", str(bad))
    assert done.returncode == 1
    assert "';'-delimited" in done.stdout


async def test_our_refund_is_booked_and_a_refund_made_at_the_psp_is_flagged(
    shared_psp, services, channels, recon
):
    before = await _receivable(channels)
    start = _fresh_start(shared_psp)
    [order] = await _pay(recon, [5000])
    await _settled(services, [order])
    refund = (
        await recon["payments"].CreateRefund(
            pb.CreateRefundRequest(payment_order_id=order, amount_minor=1200),
            metadata=[("idempotency-key", uuid.uuid4().hex)],
        )
    ).refund
    for _ in range(100):
        listed = await recon["payments"].ListRefunds(pb.ListRefundsRequest(payment_order_id=order))
        if listed.refunds[0].state == pb.REFUND_STATE_SUCCEEDED:
            break
        await asyncio.sleep(0.1)
    assert listed.refunds[0].state == pb.REFUND_STATE_SUCCEEDED
    pi = (
        await recon["payments"].GetPaymentOrder(pb.GetPaymentOrderRequest(payment_order_id=order))
    ).payment_order
    # Someone refunds 3.00 more in the PSP's dashboard: the PSP knows, we do not.
    shared_psp.client().v1.refunds.create(params={"payment_intent": pi.psp_reference, "amount": 300})
    for _ in range(100):  # our refund's ledger posting lands through the event backbone
        if await _receivable(channels) == before + 5000 - 1200:
            break
        await asyncio.sleep(0.1)
    assert await _receivable(channels) == before + 5000 - 1200

    report = await _run(recon, _report_csv(shared_psp, start))
    assert report.state == "SUCCEEDED", report
    assert (report.rows_read, report.matched, report.booked) == (3, 2, 2)
    assert report.mismatches_by_code == {"REFUND_NOT_OURS": 1}
    [m] = await _mismatches(recon, report.run_id)
    assert (m.amount_minor, m.classification) == (-300, "manual")
    assert report.booked_totals == {"USD": {"gross": 5000 - 1200, "fee": 145 + 30}}
    assert refund.refund_id
    # Success +5000, our refund -1200, settled -5000 and +1200: what the PSP owes for this order is settled.
    assert await _receivable(channels) == before


async def test_a_charge_whose_outcome_we_lost_is_auto_fixed_through_the_payment_service(
    shared_psp, services, channels, recon
):
    # The PSP charges a two-seller cart but its answer is lost, and so are its webhooks (a gateway may be
    # listening in this test process): both orders are UNKNOWN while the PSP's file has the cart's charge.
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
        orders = await _pay(recon, [4400, 600])
    finally:
        shared_psp.admin.clear_faults()
    for order in orders:
        got = await recon["payments"].GetPaymentOrder(pb.GetPaymentOrderRequest(payment_order_id=order))
        assert got.payment_order.state == pb.PAYMENT_ORDER_STATE_UNKNOWN
    data = _report_csv(shared_psp, start)

    report = await reconcile_file(
        recon["engine"], io.BytesIO(data), recon["records"], recon["booker"], RULES, fixer=recon["records"]
    )
    assert report.state == "SUCCEEDED", report
    assert (report.mismatches_by_code, report.auto_fixed, report.open_by_classification) == (
        {"PSP_CHARGED_ORDER_NOT_SUCCESS": 2},
        2,
        {},
    )
    found = sorted(
        (m.our_reference, m.state, m.classification, m.differences[0]["ours"])
        for m in await _mismatches(recon, report.run_id)
    )
    assert found == [(f"order:{o}", "auto_fixed", "auto_fixable", "UNKNOWN") for o in sorted(orders)]
    for order in orders:
        got = await recon["payments"].GetPaymentOrder(pb.GetPaymentOrderRequest(payment_order_id=order))
        assert got.payment_order.state == pb.PAYMENT_ORDER_STATE_SUCCESS
    await _settled(services, orders)  # and the wallet and ledger followed through the normal path


async def test_a_transfer_for_a_payout_not_in_our_books_is_found_and_nothing_is_booked(channels, recon):
    # The payment service (asked as recon) has no such pay-out: money left at the PSP our books do not show.
    tag = uuid.uuid4().hex[:10]
    header = "balance_transaction_id,created_utc,currency,gross,fee,net,reporting_category,source_id,"
    lines = [
        header + "transfer_metadata[payout_id]",
        f"txn_{tag}a,2026-11-20 10:00:00,usd,-40.00,0.00,-40.00,transfer,tr_{tag}a,pyo_{tag}",
        f"txn_{tag}b,2026-11-20 10:00:01,usd,-5.00,0.00,-5.00,transfer,tr_{tag}b,",
    ]
    before = await _receivable(channels)
    report = await _run(recon, ("\n".join(lines) + "\n").encode())
    assert report.state == "SUCCEEDED", report
    assert (report.matched, report.booked) == (0, 0)
    assert report.mismatches_by_code == {"PAYOUT_NOT_IN_BOOKS": 1, "UNMATCHED_ROW": 1}
    found = {m.code: m for m in await _mismatches(recon, report.run_id)}
    assert (found["PAYOUT_NOT_IN_BOOKS"].our_reference, found["PAYOUT_NOT_IN_BOOKS"].classification) == (
        f"payout:pyo_{tag}",
        "manual",
    )
    assert await _receivable(channels) == before
