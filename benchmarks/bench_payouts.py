"""Pay-out run benchmark: a monthly run for N sellers (default 10,000) through the PSP simulator, from
start to every pay-out final.

Everything runs in this process, as the test suite runs it (embedded PostgreSQL and Valkey, the
ledger, wallet and payment services on real gRPC with mutual TLS, the simulator on HTTP in a thread),
so the figures are for one process on this machine, simulator included. Seeding is not timed and
goes around the slow paths: connected accounts through the simulator's API (8 threads), one large
charge for the platform's PSP balance, sellers inserted straight into the payments database, and the
sellers' balances through the wallet's ``ApplyBatch`` and the ledger's ``PostTransactions`` (1000 a
call: Dr asset:psp_receivable / Cr seller_payable, so the books hold what a month of pay-ins would).

Then it times: the run (``StartPayoutRun`` to COMPLETED: plan, reserve, post, transfer, payout for
every seller, a chunk at a time) and the finish (the simulator's clock moved two days; by default its
``payout.paid`` webhooks, sent to a small receiver here that hands them to ``HandlePspEvent`` as the
gateway does; with ``--finish janitor`` janitor passes asking the PSP instead), until no pay-out is in
transit, and prints sellers paid per second, p50/p99 per pay-out (CREATED → IN_TRANSIT, from its
history), peak RSS, this process's CPU seconds (steadier than wall time on a shared machine) and the
top functions by cumulative time (``--profile``).

    python benchmarks/bench_payouts.py                    # 10,000 sellers
    python benchmarks/bench_payouts.py --sellers 200      # a quick look
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import pstats
import socket
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import sqlalchemy as sa
from aiohttp import web

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ledger_svc import bootstrap as ledger_bootstrap  # noqa: E402
from ledger_svc.config import LedgerSettings  # noqa: E402
from payment_svc import bootstrap as payment_bootstrap  # noqa: E402
from payment_svc.config import PaymentSettings  # noqa: E402
from psp_sim.testing import DEFAULT_API_KEY, run_simulator  # noqa: E402
from svckit.gen.common.v1 import money_pb2  # noqa: E402
from svckit.gen.ledger.v1 import ledger_service_pb2 as lpb  # noqa: E402
from svckit.gen.ledger.v1 import ledger_service_pb2_grpc as lpb_grpc  # noqa: E402
from svckit.gen.payments.v1 import payment_service_pb2 as ppb  # noqa: E402
from svckit.gen.payments.v1 import payment_service_pb2_grpc as ppb_grpc  # noqa: E402
from svckit.gen.payments.v1 import payout_service_pb2 as pb  # noqa: E402
from svckit.gen.payments.v1 import payout_service_pb2_grpc as pb_grpc  # noqa: E402
from svckit.gen.wallet.v1 import wallet_service_pb2 as wpb  # noqa: E402
from svckit.gen.wallet.v1 import wallet_service_pb2_grpc as wpb_grpc  # noqa: E402
from svckit.logging import configure_logging  # noqa: E402
from svckit.runtime import start_service  # noqa: E402
from svckit.testing import Infra  # noqa: E402
from wallet_svc import bootstrap as wallet_bootstrap  # noqa: E402
from wallet_svc.config import WalletSettings  # noqa: E402

PERIOD = "2026-11"
BATCH = 1000


def create_accounts(sim, n: int) -> list[str]:
    client = sim.client(max_network_retries=0)

    def one(_: int) -> str:
        bank = {"object": "bank_account", "country": "US", "currency": "usd", "routing_number": "110000000"}
        acct = client.v1.accounts.create(
            params={
                "type": "custom",
                "country": "US",
                "external_account": {**bank, "account_number": "000123456789"},
            }
        )
        return str(acct.id)

    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(one, range(n)))


def fund_platform(sim, amount: int) -> None:
    """One charge whose funds are available at once: the platform's balance the transfers draw on."""
    client = sim.client(max_network_retries=0)
    client.v1.payment_intents.create(
        params={
            "amount": amount,
            "currency": "usd",
            "payment_method": "pm_card_bypassPending",
            "confirm": True,
        }
    )


async def seed(pay_engine, wallet, ledger, sellers: list[str], accounts: list[str], amount: int) -> None:
    async with pay_engine.begin() as conn:
        await conn.execute(
            sa.text(
                "INSERT INTO sellers (seller_account, psp_account, payout_currency, schedule, anchor_day,"
                " minimums, reserve_bps, reserve_days, state) VALUES (:s, :a, 'USD', 'MONTHLY', 1,"
                " CAST('{}' AS json), 0, 0, 'ACTIVE')"
            ),
            [{"s": s, "a": a} for s, a in zip(sellers, accounts, strict=True)],
        )
    money = money_pb2.Money(amount_minor=amount, currency="USD")
    for i in range(0, len(sellers), BATCH):
        chunk = sellers[i : i + BATCH]
        reply = await wallet.ApplyBatch(
            wpb.ApplyBatchRequest(
                items=[
                    wpb.ApplyBatchItem(
                        idempotency_key=f"seed:{s}",
                        credit=wpb.CreditRequest(
                            seller_id=s,
                            amount=money,
                            reference=wpb.Reference(kind=wpb.REFERENCE_KIND_PAYMENT_ORDER, id=f"seed-{s}"),
                        ),
                    )
                    for s in chunk
                ]
            )
        )
        assert not any(r.HasField("error") for r in reply.results), reply.results[0]
        entries = lambda s: [  # noqa: E731
            lpb.Entry(
                account="asset:psp_receivable:stripe/USD",
                direction=lpb.DIRECTION_DEBIT,
                amount_minor=amount,
                currency="USD",
            ),
            lpb.Entry(
                account=f"liability:seller_payable:{s}/USD",
                direction=lpb.DIRECTION_CREDIT,
                amount_minor=amount,
                currency="USD",
            ),
        ]
        posted = await ledger.PostTransactions(
            lpb.PostTransactionsRequest(
                items=[
                    lpb.PostTransactionsItem(
                        idempotency_key=f"seed:{s}",
                        transaction=lpb.PostTransactionRequest(
                            entries=entries(s), description="benchmark seed", external_ref=f"seed-{s}"
                        ),
                    )
                    for s in chunk
                ]
            ),
            metadata=(("idempotency-key", f"seed-batch-{i}-{uuid.uuid4().hex}"),),
        )
        assert not any(r.HasField("error") for r in posted.results), posted.results[0]


async def serve_webhooks(sock: socket.socket, payments: ppb_grpc.PaymentServiceStub) -> web.AppRunner:
    """The gateway's webhook route in miniature: the simulator's signed POST handed to HandlePspEvent
    (which checks the signature itself), answered 200 once applied."""

    async def receive(request: web.Request) -> web.Response:
        payload = await request.read()
        event = json.loads(payload)
        await payments.HandlePspEvent(
            ppb.HandlePspEventRequest(
                event_id=event["id"],
                event_type=event["type"],
                payload=payload,
                stripe_signature=request.headers["Stripe-Signature"],
            ),
            metadata=(("idempotency-key", event["id"]),),
        )
        return web.Response(text="{}")

    app = web.Application()
    app.router.add_post("/v1/webhooks/stripe", receive)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.SockSite(runner, sock).start()
    return runner


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sellers", type=int, default=10_000)
    parser.add_argument("--amount", type=int, default=1_000, help="each seller's balance, minor units")
    parser.add_argument("--concurrency", type=int, default=16, help="PAYMENT_PAYOUT_CONCURRENCY")
    parser.add_argument("--chunk", type=int, default=250, help="PAYMENT_PAYOUT_CHUNK_SIZE")
    parser.add_argument(
        "--webhook-concurrency", type=int, default=8, help="the simulator's deliveries in flight at once"
    )
    parser.add_argument(
        "--finish",
        choices=("webhooks", "janitor"),
        default="webhooks",
        help="how pay-outs learn they are paid: the PSP's payout.paid webhooks, or janitor passes asking it",
    )
    parser.add_argument("--profile", action="store_true", help="cProfile the timed part")
    args = parser.parse_args()
    configure_logging("bench", level="WARNING")
    infra = Infra.start()
    hook_sock = socket.socket()
    hook_sock.bind(("127.0.0.1", 0))
    hook_url = f"http://127.0.0.1:{hook_sock.getsockname()[1]}/v1/webhooks/stripe"
    answers = ["payout.paid", "payout.failed", "payout.canceled"]
    endpoints = [{"url": hook_url, "enabled_events": answers}] if args.finish == "webhooks" else []
    try:
        with run_simulator(
            {"seed": 7, "webhook_endpoints": endpoints, "webhook_concurrency": args.webhook_concurrency}
        ) as sim:
            ledger_h = await start_service(
                infra.settings(LedgerSettings), ledger_bootstrap.MIGRATIONS, ledger_bootstrap.build
            )
            wallet_h = await start_service(
                infra.settings(WalletSettings), wallet_bootstrap.MIGRATIONS, wallet_bootstrap.build
            )
            settings = infra.settings(
                PaymentSettings,
                ledger_addr=ledger_h.address,
                wallet_addr=wallet_h.address,
                events_namespace=f"{infra.prefix}-bench",
                psp_base_url=sim.base_url,
                psp_api_key=DEFAULT_API_KEY,
                psp_webhook_secrets=[sim.webhook_secret],
                janitor_interval_seconds=3600,  # the benchmark runs its passes itself
                janitor_batch_size=10_000,
                # With webhooks the janitor never asks the PSP in the timed part (as in production,
                # where it looks only hours later); otherwise it asks at once.
                payout_check_seconds=86_400 if args.finish == "webhooks" else 0,
                payout_concurrency=args.concurrency,
                payout_chunk_size=args.chunk,
            )
            pay_h = await start_service(settings, payment_bootstrap.MIGRATIONS, payment_bootstrap.build)
            service = payment_bootstrap.build_service(settings, pay_h.engine)
            wallet = wpb_grpc.WalletServiceStub(infra.channel(wallet_h.address, "payment"))
            ledger = lpb_grpc.LedgerServiceStub(infra.channel(ledger_h.address, "payment"))
            payouts = pb_grpc.PayoutServiceStub(infra.channel(pay_h.address, "operator"))
            hooks = await serve_webhooks(
                hook_sock, ppb_grpc.PaymentServiceStub(infra.channel(pay_h.address, "gateway"))
            )

            run_tag = uuid.uuid4().hex[:6]
            sellers = [f"bench-{run_tag}-{i:05d}" for i in range(args.sellers)]
            t = time.perf_counter()
            accounts = await asyncio.to_thread(create_accounts, sim, args.sellers)
            await asyncio.to_thread(fund_platform, sim, args.sellers * args.amount * 2)
            await seed(pay_h.engine, wallet, ledger, sellers, accounts, args.amount)
            print(f"seeded {args.sellers} sellers in {time.perf_counter() - t:.1f} s (not timed below)")

            profiler = cProfile.Profile() if args.profile else None
            if profiler:
                profiler.enable()
            rss = psutil.Process()
            cpu0 = rss.cpu_times()
            t0 = time.perf_counter()
            started = await payouts.StartPayoutRun(
                pb.StartPayoutRunRequest(period=PERIOD), metadata=(("idempotency-key", uuid.uuid4().hex),)
            )
            run_id = started.run.run_id
            peak = 0
            while True:
                peak = max(peak, rss.memory_info().rss)
                run = (await payouts.GetPayoutRun(pb.GetPayoutRunRequest(run_id=run_id))).run
                if run.state == pb.PAYOUT_RUN_STATE_COMPLETED:
                    break
                await asyncio.sleep(0.5)
            t1 = time.perf_counter()
            sim.admin.advance(days=2)  # the bank pays them
            assert service.payouts is not None
            while True:
                if args.finish == "janitor":
                    await service.payouts.janitor.janitor_pass()
                else:
                    await asyncio.sleep(0.2)  # the webhooks arrive on their own
                peak = max(peak, rss.memory_info().rss)
                async with pay_h.engine.connect() as conn:
                    open_ = await conn.scalar(
                        sa.text(
                            "SELECT count(*) FROM payouts WHERE period = :p AND state NOT IN ('PAID', 'FAILED', 'CANCELED')"
                        ),
                        {"p": PERIOD},
                    )
                if not open_:
                    break
            t2 = time.perf_counter()
            cpu1 = rss.cpu_times()
            if profiler:
                profiler.disable()
            async with pay_h.engine.connect() as conn:
                states: dict[str, int] = dict(
                    (await conn.execute(sa.text("SELECT state, count(*) FROM payouts GROUP BY state"))).all()
                )
                spans = [
                    r.seconds
                    for r in await conn.execute(
                        sa.text(
                            "SELECT extract(epoch FROM max(t.created_at) FILTER (WHERE t.to_state = 'IN_TRANSIT')"
                            " - min(t.created_at)) AS seconds FROM payout_transitions t GROUP BY t.payout_id"
                        )
                    )
                    if r.seconds is not None
                ]
            paid = states.get("PAID", 0)
            total = t2 - t0
            print(
                json.dumps(
                    {
                        "sellers": args.sellers,
                        "states": states,
                        "run_seconds": round(t1 - t0, 1),
                        "finish_seconds": round(t2 - t1, 1),
                        "total_seconds": round(total, 1),
                        "sellers_paid_per_second": round(paid / total, 1),
                        "payout_send_p50_ms": round(pct([float(s) for s in spans], 50) * 1000, 1),
                        "payout_send_p99_ms": round(pct([float(s) for s in spans], 99) * 1000, 1),
                        "peak_rss_mb": round(peak / 2**20),
                        # Load on a shared machine stretches wall time; CPU time of this one process
                        # (everything: services, PostgreSQL client side, simulator) varies less.
                        "process_cpu_seconds": round(
                            (cpu1.user + cpu1.system) - (cpu0.user + cpu0.system), 1
                        ),
                        "finish": args.finish,
                    },
                    indent=2,
                )
            )
            if profiler:
                pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)
            # Bounded: a delivery still in flight must not hold the benchmark's exit.
            await asyncio.wait([asyncio.ensure_future(hooks.cleanup())], timeout=5)
            await service.close()
            for h in (pay_h, wallet_h, ledger_h):
                await h.stop(0.2)
    finally:
        infra.stop()


if __name__ == "__main__":
    asyncio.run(main())
