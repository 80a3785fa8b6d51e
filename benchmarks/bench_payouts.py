"""Pay-out run benchmark: a monthly run for N sellers (default 10,000) through the PSP simulator, from
start to every pay-out final, on the deployed shape.

The stack is the one ``make run`` starts (``svckit.devstack.supervisor``, on free ports, in a data folder
of its own): embedded PostgreSQL and Valkey, the ledger, wallet, payment and reconciliation services,
the gateway and the PSP simulator, each in its own process, gRPC over mutual TLS between them. The
simulator keeps its state in memory only (``make run`` keeps it in SQLite; the PSP's own storage is
not ours to measure) and delivers its ``payout.paid`` webhooks to the gateway, which hands them to
``HandlePspEvent`` as in production.

Seeding is not timed and goes around the slow paths: connected accounts through the simulator's API
(8 threads), one large charge for the platform's PSP balance, sellers inserted straight into the
payments database, and the sellers' balances through the wallet's ``ApplyBatch`` and the ledger's
``PostTransactions`` (1000 a call: Dr asset:psp_receivable / Cr seller_payable, so the books hold what
a month of pay-ins would).

Then it times: the run (``StartPayoutRun`` to COMPLETED: plan, reserve, post, transfer, payout for
every seller, a chunk at a time) and the finish (the simulator's clock moved two days; by default its
``payout.paid`` webhooks through the gateway; with ``--finish janitor`` the payment service's janitor
asking the PSP instead), until no pay-out is in transit, and prints sellers paid per second, p50/p99
per pay-out (CREATED → IN_TRANSIT, from its history), and the CPU seconds of every process of the
stack over the timed part (PostgreSQL's backends summed; steadier than wall time on a shared machine).
``--profile payment`` (or ledger, wallet, recon) runs that service under cProfile
(``SVC_PROFILE_FILE``) and prints its top functions by cumulative time after the stack stops.

    python benchmarks/bench_payouts.py                    # 10,000 sellers
    python benchmarks/bench_payouts.py --sellers 200      # a quick look
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import pstats
import shutil
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psutil
import sqlalchemy as sa
import stripe
from rich.console import Console
from sqlalchemy.ext.asyncio import create_async_engine

from payment_svc.config import PaymentSettings
from psp_sim.testing import DEFAULT_API_KEY, SimAdmin
from svckit import pki
from svckit.devstack import supervisor
from svckit.devstack.infra import free_port
from svckit.gen.common.v1 import money_pb2
from svckit.gen.ledger.v1 import ledger_service_pb2 as lpb
from svckit.gen.ledger.v1 import ledger_service_pb2_grpc as lpb_grpc
from svckit.gen.payments.v1 import payout_service_pb2 as pb
from svckit.gen.payments.v1 import payout_service_pb2_grpc as pb_grpc
from svckit.gen.wallet.v1 import wallet_service_pb2 as wpb
from svckit.gen.wallet.v1 import wallet_service_pb2_grpc as wpb_grpc
from svckit.runtime import PROFILE_FILE_ENV
from svckit.tls import GrpcSecurity, identity_files

PERIOD = "2026-11"
BATCH = 1000
PROFILED = ("payment", "ledger", "wallet", "recon")


def create_accounts(client: Any, n: int) -> list[str]:
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


def fund_platform(client: stripe.StripeClient, amount: int) -> None:
    """One charge whose funds are available at once: the platform's balance the transfers draw on."""
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
                # As registration leaves them: the PSP said just now that the account takes payouts.
                "INSERT INTO sellers (seller_account, psp_account, payout_currency, schedule, anchor_day,"
                " minimums, reserve_bps, reserve_days, state, psp_payouts_enabled, psp_account_checked_at)"
                " VALUES (:s, :a, 'USD', 'MONTHLY', 1, CAST('{}' AS json), 0, 0, 'ACTIVE', true, now())"
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


def start_stack(data_dir: Path, args: argparse.Namespace, profile_file: Path) -> supervisor.Stack:
    """``make run``'s supervisor on free ports, its console in the data folder's log."""
    for name in ("DATABASE_URL", "REDIS_URL", "REDIS_CLUSTER", "DEV_REPLICAS", "DEV_PAYMENT_REPLICAS"):
        os.environ.pop(name, None)
    if args.payment_replicas > 1:
        # The gateway spreads the webhooks over them; their inbox workers share the facts.
        os.environ["DEV_PAYMENT_REPLICAS"] = str(args.payment_replicas)
    ports = {
        v: str(free_port())
        for v in (
            "DEV_PG_PORT", "DEV_REDIS_PORT", "PAYMENT_GRPC_PORT", "LEDGER_GRPC_PORT", "WALLET_GRPC_PORT",
            "RECON_GRPC_PORT", "GATEWAY_HTTP_PORT", "PSP_SIM_PORT",
        )
    }  # fmt: skip
    sim_config = data_dir / "psp_sim.json"
    sim_config.write_text(json.dumps({"seed": 7, "webhook_concurrency": args.webhook_concurrency}))
    janitor = args.finish == "janitor"
    os.environ.update(
        {
            **ports,
            "LOG_LEVEL": "WARNING",
            "PSP_SIM_CONFIG": str(sim_config),
            "PAYMENT_PAYOUT_CONCURRENCY": str(args.concurrency),
            "PAYMENT_PAYOUT_CHUNK_SIZE": str(args.chunk),
            "PAYMENT_JANITOR_BATCH_SIZE": "10000",
            "PAYMENT_JANITOR_INTERVAL_SECONDS": "1" if janitor else "3600",
            # With webhooks the janitor never asks the PSP in the timed part (as in production, where
            # it looks only hours later); otherwise it asks at once.
            "PAYMENT_PAYOUT_CHECK_SECONDS": "0" if janitor else "86400",
            "GATEWAY_RATE_LIMIT_REQUESTS": "1000000",
        }
    )
    (data_dir / "logs").mkdir(parents=True, exist_ok=True)
    supervisor.console = Console(file=open(data_dir / "logs" / "supervisor.log", "a"), highlight=False)  # noqa: SIM115
    stack = supervisor.Stack(data_dir, echo_logs=False)
    for child in stack.children:
        child.env.pop("PSP_SIM_STATE", None)  # the simulator in memory
        if child.name == args.profile:
            child.env[PROFILE_FILE_ENV] = str(profile_file)
    try:
        stack.start_infra()
        stack.start_children()
        stack.wait_ready(120)
    except BaseException:
        stack.stop()
        raise
    return stack


class CpuMeter:
    """CPU seconds of each process of the stack (PostgreSQL: the server and all its backends)."""

    def __init__(self, stack: supervisor.Stack) -> None:
        self._roots: dict[str, psutil.Process] = {"benchmark": psutil.Process()}
        for child in stack.children:
            if child.proc is not None:
                self._roots[child.name] = psutil.Process(child.proc.pid)
        if stack.pg is not None and stack.pg.proc is not None:
            self._roots["postgres"] = psutil.Process(stack.pg.proc.pid)
        if stack.valkey is not None and stack.valkey.proc is not None:
            self._roots["valkey"] = psutil.Process(stack.valkey.proc.pid)

    def sample(self) -> dict[str, dict[int, float]]:
        seen: dict[str, dict[int, float]] = {}
        for name, root in self._roots.items():
            procs = [root] + (root.children(recursive=True) if name == "postgres" else [])
            for proc in procs:
                try:
                    t = proc.cpu_times()
                except psutil.NoSuchProcess:
                    continue
                seen.setdefault(name, {})[proc.pid] = t.user + t.system
        return seen

    @staticmethod
    def spent(before: dict[str, dict[int, float]], after: dict[str, dict[int, float]]) -> dict[str, float]:
        """Per process: CPU seconds between the samples (a backend started in between counts whole;
        one that ended in between is lost, the pools keep theirs open)."""
        return {
            name: round(sum(cpu - before.get(name, {}).get(pid, 0.0) for pid, cpu in pids.items()), 1)
            for name, pids in after.items()
        }


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--sellers", type=int, default=10_000)
    parser.add_argument("--amount", type=int, default=1_000, help="each seller's balance, minor units")
    parser.add_argument("--concurrency", type=int, default=16, help="PAYMENT_PAYOUT_CONCURRENCY")
    parser.add_argument("--chunk", type=int, default=250, help="PAYMENT_PAYOUT_CHUNK_SIZE")
    parser.add_argument(
        "--webhook-concurrency",
        type=int,
        default=32,
        help="the simulator's deliveries in flight at once (a PSP delivers a bank day's events side by side)",
    )
    parser.add_argument(
        "--finish",
        choices=("webhooks", "janitor"),
        default="webhooks",
        help="how pay-outs learn they are paid: the PSP's payout.paid webhooks, or the janitor asking it",
    )
    parser.add_argument(
        "--payment-replicas",
        type=int,
        default=1,
        help="payment service processes (DEV_PAYMENT_REPLICAS); the run is driven by the first",
    )
    parser.add_argument("--profile", choices=PROFILED, help="run this service under cProfile")
    parser.add_argument("--keep", action="store_true", help="keep the data folder (logs) afterwards")
    args = parser.parse_args()
    data_dir = Path(tempfile.mkdtemp(prefix="bench-payouts-"))
    profile_file = data_dir / "service.prof"
    stack = start_stack(data_dir, args, profile_file)
    try:
        await measure(stack, args)
    finally:
        stack.stop()
        if args.profile and profile_file.exists():
            print(f"cProfile of the {args.profile} service (whole process life, cumulative):")
            stats = pstats.Stats(str(profile_file))
            stats.sort_stats("cumulative").print_stats(30)
            print(f"... and by own time (tottime); the file stays in {profile_file} with --keep:")
            stats.sort_stats("tottime").print_stats(30)
        if args.keep:
            print(f"data and logs in {data_dir}")
        else:
            shutil.rmtree(data_dir, ignore_errors=True)


def _security(stack: supervisor.Stack, identity: str) -> GrpcSecurity:
    assert stack.tls.pki_dir is not None  # the dev stack runs mutual TLS unless told otherwise
    files = pki.files(stack.tls.pki_dir, identity)
    return identity_files(files.ca_file, files.cert_file, files.key_file)


async def measure(stack: supervisor.Stack, args: argparse.Namespace) -> None:
    by_name = {c.name: c for c in stack.children}
    sim_url = by_name["psp-sim"].url
    client = stripe.StripeClient(
        DEFAULT_API_KEY, base_addresses={"api": sim_url, "files": sim_url}, max_network_retries=0
    )
    admin = SimAdmin(sim_url)
    payment_channel = _security(stack, "payment")
    wallet = wpb_grpc.WalletServiceStub(payment_channel.aio_channel(by_name["wallet"].address))
    ledger = lpb_grpc.LedgerServiceStub(payment_channel.aio_channel(by_name["ledger"].address))
    payouts = pb_grpc.PayoutServiceStub(_security(stack, "operator").aio_channel(by_name["payment"].address))
    pay_engine = create_async_engine(
        PaymentSettings(database_url=stack.env["DATABASE_URL"], environment="development").sqlalchemy_url()
    )
    try:
        run_tag = uuid.uuid4().hex[:6]
        sellers = [f"bench-{run_tag}-{i:05d}" for i in range(args.sellers)]
        t = time.perf_counter()
        accounts = await asyncio.to_thread(create_accounts, client, args.sellers)
        await asyncio.to_thread(fund_platform, client, args.sellers * args.amount * 2)
        await seed(pay_engine, wallet, ledger, sellers, accounts, args.amount)
        print(f"seeded {args.sellers} sellers in {time.perf_counter() - t:.1f} s (not timed below)")

        meter = CpuMeter(stack)
        cpu0 = meter.sample()
        t0 = time.perf_counter()
        started = await payouts.StartPayoutRun(
            pb.StartPayoutRunRequest(period=PERIOD), metadata=(("idempotency-key", uuid.uuid4().hex),)
        )
        run_id = started.run.run_id
        while True:
            # The run's state without its items: GetPayoutRun answers all 10,000 of them each time,
            # which cost the payment service CPU the run itself does not spend.
            listed = await payouts.ListPayoutRuns(pb.ListPayoutRunsRequest(period=PERIOD, page_size=1000))
            (run,) = [r for r in listed.runs if r.run_id == run_id]
            if run.state == pb.PAYOUT_RUN_STATE_COMPLETED:
                break
            await asyncio.sleep(0.5)
        t1 = time.perf_counter()
        cpu1 = meter.sample()
        await asyncio.to_thread(admin.advance, days=2)  # the bank pays them
        while True:
            await asyncio.sleep(0.2)  # the webhooks (or the janitor's passes) arrive on their own
            async with pay_engine.connect() as conn:
                open_ = await conn.scalar(
                    sa.text(
                        "SELECT count(*) FROM payouts WHERE period = :p"
                        " AND state NOT IN ('PAID', 'FAILED', 'CANCELED')"
                    ),
                    {"p": PERIOD},
                )
            if not open_:
                break
        t2 = time.perf_counter()
        cpu2 = meter.sample()
        async with pay_engine.connect() as conn:
            states: dict[str, int] = dict(
                (await conn.execute(sa.text("SELECT state, count(*) FROM payouts GROUP BY state"))).all()
            )
            spans = [
                float(r.seconds)
                for r in await conn.execute(
                    sa.text(
                        "SELECT extract(epoch FROM max(t.created_at) FILTER (WHERE t.to_state = 'IN_TRANSIT')"
                        " - min(t.created_at)) AS seconds FROM payout_transitions t GROUP BY t.payout_id"
                    )
                )
                if r.seconds is not None
            ]
            # The inbox applies facts in groups, one transaction each (its now() stamps the group's rows).
            paid_groups = await conn.scalar(
                sa.text(
                    "SELECT count(DISTINCT t.created_at) FROM payout_transitions t"
                    " JOIN payouts p USING (payout_id) WHERE p.period = :p AND t.to_state = 'PAID'"
                ),
                {"p": PERIOD},
            )
        paid = states.get("PAID", 0)
        total = t2 - t0
        run_cpu, finish_cpu = CpuMeter.spent(cpu0, cpu1), CpuMeter.spent(cpu1, cpu2)
        all_cpu = CpuMeter.spent(cpu0, cpu2)
        print(
            json.dumps(
                {
                    "sellers": args.sellers,
                    "states": states,
                    "run_seconds": round(t1 - t0, 1),
                    "finish_seconds": round(t2 - t1, 1),
                    "total_seconds": round(total, 1),
                    "sellers_paid_per_second": round(paid / total, 1),
                    "paid_groups": paid_groups,
                    "payout_send_p50_ms": round(pct(spans, 50) * 1000, 1),
                    "payout_send_p99_ms": round(pct(spans, 99) * 1000, 1),
                    # Load on a shared machine stretches wall time; CPU time per process varies less.
                    "cpu_seconds_total": round(sum(all_cpu.values()), 1),
                    "cpu_seconds": all_cpu,
                    "cpu_seconds_run": run_cpu,
                    "cpu_seconds_finish": finish_cpu,
                    "finish": args.finish,
                    "load_average": [round(x, 2) for x in os.getloadavg()],
                },
                indent=2,
            )
        )
    finally:
        await pay_engine.dispose()
        admin.close()


if __name__ == "__main__":
    asyncio.run(main())
