"""Settlement reconciliation benchmark: a PSP file of N rows (default 1,000,000) against N orders of ours.

Starts the whole system as separate processes (the same supervisor as ``make run``, on free ports, with a
durable embedded PostgreSQL in a temporary folder; ``bench_payin.start_stack``). Not timed:

- **our side, seeded straight into the databases** as a day of N single-seller direct-mode checkouts would leave
  them: one ``INSERT ... SELECT FROM generate_series`` each into ``payment_events`` and ``payment_orders`` of the
  payments database (server-side generation, the fastest bulk path; every order SUCCESS with
  ``psp_reference = pi_...``, ``wallet_updated`` and ``ledger_updated`` true, spread over 50 sellers), then the
  ledger's side of those successes as one ``PostTransaction`` through the real ledger (Dr
  ``asset:psp_receivable:stripe/USD`` the day's total / Cr each seller's ``seller_payable``: the balances N
  success postings would leave; recon reads only the receivable and the orders' flags, so N separate postings
  would change nothing the run reads). Wallets are not seeded: settlement never reads them.
- **the PSP's file**: N ``charge`` rows of the itemized balance-change report (our ``checkout_id`` metadata, the
  PaymentIntent id, fee 2.9 % + 30 as the simulator charges), written to a file on disk.

Timed, in this process acting as the recon CLI (``python -m recon_svc run --file``) with the recon certificate:
``reconcile_file`` — validate and hash (with workers: copied and hashed here, validated by ranges), then chunks
of ``--chunk`` rows: ``BatchGetCheckoutOrderColumns``, classify in memory, one recon transaction (claims,
mismatches, bookings), one ``PostTransactions`` per chunk. It prints
rows/s, the phase times, this process's peak RSS, CPU seconds per process (where the time goes) and checks that
every row was matched and booked and that the receivable is back to zero. ``--workers 2`` runs both passes on
two worker processes (the first by byte ranges of the file; their CPU is shown as ``recon workers``).

    python benchmarks/bench_recon.py                 # 1,000,000 rows
    python benchmarks/bench_recon.py --rows 100000   # a quicker look
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import json
import pstats
import resource
import signal
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psutil
import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy.ext.asyncio import create_async_engine  # noqa: E402

from ledger_svc import naming  # noqa: E402
from recon_svc.settlement.classify import Rules  # noqa: E402
from recon_svc.settlement.records import GrpcPaymentRecords, GrpcSettlementBooker  # noqa: E402
from recon_svc.settlement.run import PhaseTimes, WorkerSetup, reconcile_file  # noqa: E402
from svckit import pki  # noqa: E402
from svckit.gen.ledger.v1 import ledger_service_pb2 as lpb  # noqa: E402
from svckit.gen.ledger.v1 import ledger_service_pb2_grpc as lpb_grpc  # noqa: E402
from svckit.gen.payments.v1 import payment_service_pb2_grpc as ppb_grpc  # noqa: E402
from svckit.gen.payments.v1 import payout_service_pb2_grpc as popb_grpc  # noqa: E402
from svckit.logging import configure_logging  # noqa: E402
from svckit.tls import identity_files  # noqa: E402

SELLERS = 50
HEADER = (
    "balance_transaction_id,created_utc,currency,gross,fee,net,reporting_category,source_id,charge_id,"
    "payment_intent_id,payment_metadata[checkout_id]\n"
)


def amount(i: int) -> int:
    return 1000 + i % 5000


def fee(gross: int) -> int:
    return (gross * 290 + 5000) // 10000 + 30


def seed_payments(pg_port: int, tag: str, n: int) -> None:
    with psycopg.connect(f"postgresql://postgres@127.0.0.1:{pg_port}/payments", autocommit=True) as conn:
        conn.execute(
            "INSERT INTO payment_events (checkout_id, buyer_info, buyer_id, mode, currency, total_minor,"
            " created_at) SELECT %(p)s || 'co_' || i, '{}', 'bench-buyer', 'DIRECT', 'USD', 1000 + i %% 5000,"
            " now() - interval '1 day' FROM generate_series(0, %(n)s - 1) AS i",
            {"p": tag, "n": n},
        )
        conn.execute(
            "INSERT INTO payment_orders (payment_order_id, checkout_id, seller_account, amount_minor, currency,"
            " state, psp_reference, wallet_updated, ledger_updated, created_at, updated_at)"
            " SELECT %(p)s || 'po_' || i, %(p)s || 'co_' || i, 'bench-' || %(p)s || '-' || (i %% %(s)s),"
            " 1000 + i %% 5000, 'USD', 'SUCCESS', 'pi_' || %(p)s || i, true, true,"
            " now() - interval '1 day', now() - interval '1 day' FROM generate_series(0, %(n)s - 1) AS i",
            {"p": tag, "n": n, "s": SELLERS},
        )
        conn.execute("ANALYZE payment_orders")


async def seed_ledger(ledger: lpb_grpc.LedgerServiceStub, tag: str, n: int) -> int:
    per_seller = [0] * SELLERS
    for i in range(n):
        per_seller[i % SELLERS] += amount(i)
    total = sum(per_seller)
    entries = [
        lpb.Entry(account=naming.psp_receivable("stripe", "USD"), direction=lpb.DIRECTION_DEBIT,
                  amount_minor=total, currency="USD"),
        *(
            lpb.Entry(account=naming.seller_payable(f"bench-{tag}-{k}", "USD"), direction=lpb.DIRECTION_CREDIT,
                      amount_minor=v, currency="USD")
            for k, v in enumerate(per_seller)
        ),
    ]  # fmt: skip
    await ledger.PostTransaction(
        lpb.PostTransactionRequest(
            entries=entries, description=f"benchmark: {n} successes", external_ref=tag
        ),
        metadata=(("idempotency-key", f"bench-recon-{tag}"),),
    )
    return total


def write_file(path: Path, tag: str, n: int) -> None:
    with path.open("w", buffering=1 << 20) as out:
        out.write(HEADER)
        for i in range(n):
            g = amount(i)
            f = fee(g)
            net = g - f
            second = i % 86400
            out.write(
                f"txn_{tag}{i},2026-11-20 {second // 3600:02d}:{second // 60 % 60:02d}:{second % 60:02d},usd,"
                f"{g // 100}.{g % 100:02d},{f // 100}.{f % 100:02d},{net // 100}.{net % 100:02d},charge,"
                f"ch_{tag}{i},ch_{tag}{i},pi_{tag}{i},{tag}co_{i}\n"
            )


async def receivable(ledger: lpb_grpc.LedgerServiceStub) -> int:
    reply = await ledger.GetBalance(lpb.GetBalanceRequest(account=naming.psp_receivable("stripe", "USD")))
    return reply.balance_minor


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--chunk", type=int, default=5000, help="rows per chunk (reconcile_file chunk_rows)")
    parser.add_argument("--profile", action="store_true", help="cProfile this process during the run")
    parser.add_argument(
        "--workers", type=int, default=1, help="processes of both passes (reconcile_file workers)"
    )
    ns = parser.parse_args()
    # Imported here, not at the top: a spawned worker runs this script's top level again (as __mp_main__), and
    # should import what a worker of the service imports, not the stack's helpers (aiohttp and the rest).
    from benchmarks.bench_payin import cpu_seconds, processes, start_stack  # the same stack start

    configure_logging("bench", level="WARNING")
    tag = f"b{uuid.uuid4().hex[:6]}"
    with tempfile.TemporaryDirectory(prefix="bench-recon-") as tmp:
        data = Path(tmp)
        stack, ports = start_stack(data, 1)
        try:
            t = time.perf_counter()
            seed_payments(ports["pg"], tag, ns.rows)
            pki_dir = data / "pki"
            payment_id = pki.files(pki_dir, "payment")
            recon_id = pki.files(pki_dir, "recon")
            as_payment = identity_files(payment_id.ca_file, payment_id.cert_file, payment_id.key_file)
            as_recon = identity_files(recon_id.ca_file, recon_id.cert_file, recon_id.key_file)
            seed_channel = as_payment.aio_channel(f"127.0.0.1:{ports['ledger']}")
            seeded_total = await seed_ledger(lpb_grpc.LedgerServiceStub(seed_channel), tag, ns.rows)
            await seed_channel.close()
            path = data / "settlement.csv"
            write_file(path, tag, ns.rows)
            print(f"seeded {ns.rows} orders and wrote {path.stat().st_size / 2**20:.0f} MiB of file in "
                  f"{time.perf_counter() - t:.1f} s (not timed)", flush=True)  # fmt: skip

            pay_ch = as_recon.aio_channel(f"127.0.0.1:{ports['payment']}")
            ledger_ch = as_recon.aio_channel(f"127.0.0.1:{ports['ledger']}")
            ledger = lpb_grpc.LedgerServiceStub(ledger_ch)
            records = GrpcPaymentRecords(
                ppb_grpc.PaymentServiceStub(pay_ch), 120, popb_grpc.PayoutServiceStub(pay_ch)
            )
            booker = GrpcSettlementBooker(ledger, 120)
            engine = create_async_engine(
                f"postgresql+psycopg://postgres@127.0.0.1:{ports['pg']}/recon", pool_size=2
            )
            rules = Rules(fee_tolerance_minor=2, expected_fee_bps=290, expected_fee_fixed_minor=30)
            setup = WorkerSetup(
                database_url=f"postgresql+psycopg://postgres@127.0.0.1:{ports['pg']}/recon",
                payment_address=f"127.0.0.1:{ports['payment']}",
                ledger_address=f"127.0.0.1:{ports['ledger']}",
                ca_file=str(recon_id.ca_file),
                cert_file=str(recon_id.cert_file),
                key_file=str(recon_id.key_file),
            )
            before = await receivable(ledger)

            procs = processes(stack)
            me = psutil.Process()
            peak = 0

            async def sample() -> None:
                nonlocal peak
                while True:
                    peak = max(peak, me.memory_info().rss)
                    await asyncio.sleep(0.2)

            sampler = asyncio.create_task(sample())
            times = PhaseTimes()
            profiler = cProfile.Profile() if ns.profile else None
            cpu_before, mine_before = cpu_seconds(procs), me.cpu_times()
            load_before = psutil.getloadavg()[0]
            started = time.perf_counter()
            if profiler:
                profiler.enable()
            with path.open("rb") as source:
                report = await reconcile_file(engine, source, records, booker, rules, times=times,
                                              chunk_rows=ns.chunk, workers=ns.workers, worker_setup=setup)  # fmt: skip
            if profiler:
                profiler.disable()
            wall = time.perf_counter() - started
            sampler.cancel()
            mine_after = me.cpu_times()
            # The largest worker process (reaped by now; 0 without workers), read before the
            # stack stops: its processes, once reaped, would count as children too.
            workers_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
            cpu = {k: v - cpu_before.get(k, 0.0) for k, v in cpu_seconds(procs).items()}
            cpu["bench (recon run)"] = (mine_after.user + mine_after.system) - (
                mine_before.user + mine_before.system
            )
            # The second pass's worker processes (reaped when the run ends, so counted as this one's children).
            cpu["recon workers"] = (mine_after.children_user + mine_after.children_system) - (
                mine_before.children_user + mine_before.children_system
            )
            after = await receivable(ledger)
            peak = max(peak, me.memory_info().rss)
            await pay_ch.close()
            await ledger_ch.close()
            await engine.dispose()
        finally:
            stack.send_signal(signal.SIGINT)
            with contextlib.suppress(Exception):
                stack.wait(60)
    grouped: dict[str, float] = {}
    for name, seconds in cpu.items():
        grouped[name.split("#")[0]] = grouped.get(name.split("#")[0], 0.0) + seconds
    ok = (
        report.state == "SUCCEEDED"
        and report.booked == ns.rows
        and not report.mismatches_by_code
        and after - before == -seeded_total
    )
    print(
        json.dumps(
            {
                "rows": ns.rows,
                "chunk_rows": ns.chunk,
                "workers": ns.workers,
                "state": report.state,
                "matched": report.matched,
                "booked": report.booked,
                "mismatches": report.mismatches_by_code,
                "receivable_change_minor": after - before,
                "seeded_total_minor": seeded_total,
                "wall_seconds": round(wall, 1),
                "rows_per_second": round(ns.rows / wall),
                "phase_seconds": {k: round(v, 1) for k, v in vars(times).items()},
                "peak_rss_mib": round(peak / 2**20),
                "max_rss_mib_getrusage": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
                "max_rss_mib_workers": round(workers_rss / 1024),
                "cpu_seconds": {k: round(v, 1) for k, v in sorted(grouped.items(), key=lambda kv: -kv[1]) if v >= 0.1},
                "load_average_before_after": [round(load_before, 1), round(psutil.getloadavg()[0], 1)],
                "checks_passed": ok,
            },
            indent=2,
        )
    )  # fmt: skip
    if profiler:
        pstats.Stats(profiler).sort_stats("tottime").print_stats(20)
    if not ok:
        raise SystemExit(1)


if __name__ == "__main__":
    asyncio.run(main())
