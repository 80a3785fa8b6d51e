"""Wallet credits per second through gRPC, next to pgbench TPC-B on the same PostgreSQL.

    python benchmarks/bench_wallet.py            # full run, about 2.5 minutes
    python benchmarks/bench_wallet.py --seconds 4 --pgbench-seconds 5   # quick look

Starts its own durable embedded PostgreSQL (fsync, synchronous_commit and full_page_writes ON, as in
production), runs wallet_svc as a separate process (`python -m wallet_svc serve`), and drives it from
several client processes so the Python client does not share the service's GIL. Scenarios, first with
coalescing off (WALLET_COALESCE_MOVEMENTS=false: one transaction per call), then on (the default):

1. one client, sequential credits: the fixed cost of one call, without queueing;
2. one hot wallet, many concurrent clients: every credit queues on the same row lock;
3. 10,000 wallets, many concurrent clients: no row contention.

Then, on the coalescing service, ApplyBatch calls of 100 credits (a few calls in flight):

4. batched, one hot wallet;
5. batched, 10,000 wallets (each batch locks ~100 wallets in one fixed order).

Then pgbench TPC-B (`pgbench -i`, then a few clients) on the same server. Prints throughput, p50/p99
latency, the service's peak RSS, and CPU seconds per 1,000 credits of the service, PostgreSQL and the
clients, which is where the time goes.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import cast

ROOT = Path(__file__).resolve().parent.parent
# Run against this checkout, whatever package the virtualenv has installed in editable mode.
sys.path.insert(0, str(ROOT))

import grpc  # noqa: E402
import psutil  # noqa: E402
import psycopg  # noqa: E402
from grpc_health.v1 import health_pb2, health_pb2_grpc  # noqa: E402

from benchmarks._parse import first_group  # noqa: E402
from benchmarks._wallet_client import ClientResult, run_client  # noqa: E402
from svckit.devstack.infra import EmbeddedPostgres, free_port, pg_bin_dir  # noqa: E402
from svckit.testing import Infra  # noqa: E402

SPREAD_WALLETS = 10_000
# Logical CPUs, for the machine's CPU capacity per 1,000 credits (psutil answers None only where the
# OS cannot tell; Linux always can).
CPUS = cast(int, psutil.cpu_count())


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f}, {five:.2f}, {fifteen:.2f}"


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def start_infra(tmp: Path) -> tuple[Infra, EmbeddedPostgres]:
    """The infra the service runs on, and its PostgreSQL, whose CPU every scenario measures."""
    pg = EmbeddedPostgres(tmp / "pg", port=free_port(), durable=True).start()
    # Redis is not used by wallet_svc; the URL only satisfies the settings.
    infra = Infra(database_url=pg.url, redis_url="redis://127.0.0.1:1/0", _pg=pg, _tmp=tmp)
    os.environ.update(infra.tls_env("payment"))  # the client processes call as `payment` (may credit)
    return infra, pg


def start_service(infra: Infra, db_name: str, pool_size: int, coalesce: bool) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "WALLET_DATABASE_URL": infra.database_url,
        "WALLET_DATABASE_NAME": db_name,
        "WALLET_GRPC_PORT": str(port),
        "WALLET_METRICS_PORT": "0",
        "WALLET_LOG_LEVEL": "WARNING",
        "WALLET_LOG_FORMAT": "json",
        "WALLET_DB_POOL_SIZE": str(pool_size),
        "WALLET_COALESCE_MOVEMENTS": "true" if coalesce else "false",
        **infra.tls_env("wallet"),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "wallet_svc", "serve"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL
    )
    address = f"127.0.0.1:{port}"
    channel = infra.sync_channel(address)
    stub = health_pb2_grpc.HealthStub(channel)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"wallet_svc exited with {proc.returncode}")
        try:
            if stub.Check(health_pb2.HealthCheckRequest(), timeout=1).status == 1:  # type: ignore[attr-defined]  # the stub declares no methods
                channel.close()
                return proc, address
        except grpc.RpcError:
            time.sleep(0.2)
    raise TimeoutError("wallet_svc did not become healthy")


def seed_wallets(url: str, count: int) -> None:
    """Create the spread wallets with one recorded movement each, so the books stay exact."""
    with psycopg.connect(url) as conn:
        conn.execute(
            "INSERT INTO wallets (seller_id, currency, available_minor) "
            "SELECT 'bench_' || i, 'USD', 1 FROM generate_series(0, %s) i ON CONFLICT DO NOTHING",
            (count - 1,),
        )
        conn.execute(
            "INSERT INTO wallet_movements (seller_id, currency, kind, amount_minor, available_delta_minor,"
            " reserved_delta_minor, available_after_minor, reserved_after_minor, reference_kind, reference_id,"
            " idempotency_key) SELECT 'bench_' || i, 'USD', 'CREDIT', 1, 1, 0, 1, 0, 'ADJUSTMENT', 'bench-seed',"
            " 'bench-seed-' || i FROM generate_series(0, %s) i",
            (count - 1,),
        )


def cpu_by_pid(procs: list[psutil.Process]) -> dict[int, float]:
    """CPU seconds (user + system) of each live process."""
    seen: dict[int, float] = {}
    for p in procs:
        try:
            t = p.cpu_times()
            seen[p.pid] = t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return seen


def cpu_delta(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU used between two snapshots; a process started in between counts from zero."""
    return sum(cpu - before.get(pid, 0.0) for pid, cpu in after.items())


def postgres_processes(pg: EmbeddedPostgres) -> list[psutil.Process]:
    root = psutil.Process(pg.pid)
    return [root, *root.children(recursive=True)]


def scenario(
    name: str,
    address: str,
    service: psutil.Process,
    pg: EmbeddedPostgres,
    sellers: int,
    processes: int,
    concurrency: int,
    seconds: float,
    warmup: float,
    batch: int = 0,
) -> dict:
    now = time.time()
    measure_from = now + 1.5 + warmup  # spawned clients need about a second to start
    measure_until = measure_from + seconds
    ctx = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(processes, mp_context=ctx) as pool:
        futures = [
            pool.submit(run_client, address, sellers, concurrency, 4, measure_from, measure_until, i, batch)
            for i in range(processes)
        ]
        time.sleep(max(0.0, measure_from - time.time()))
        svc0, pg0, wall0 = cpu_by_pid([service]), cpu_by_pid(postgres_processes(pg)), time.time()
        time.sleep(max(0.0, measure_until - time.time()))
        svc1, pg1, wall1 = cpu_by_pid([service]), cpu_by_pid(postgres_processes(pg)), time.time()
        results: list[ClientResult] = [f.result() for f in futures]
    ok = sum(r.ok for r in results)
    latencies = [x for r in results for x in r.latencies_ms]
    client_cpu = sum(r.cpu_seconds for r in results) * seconds / (seconds + warmup + 1.5)
    per_k = 1000 / ok if ok else float("nan")
    row = {
        "name": name,
        "clients": processes * concurrency,
        "ok": ok,
        "errors": sum(r.errors for r in results),
        "error_samples": [s for r in results for s in r.error_samples][:3],
        "rate": ok / seconds,
        "calls": len(latencies),
        "p50": percentile(latencies, 0.50),
        "p99": percentile(latencies, 0.99),
        "svc_cpu_per_k": cpu_delta(svc0, svc1) * per_k,
        "pg_cpu_per_k": cpu_delta(pg0, pg1) * per_k,
        "client_cpu_per_k": client_cpu * per_k,
        "wall_cpu_capacity_per_k": (wall1 - wall0) * CPUS * per_k,
        "load": load(),
    }
    print(
        f"{name:<40} {row['clients']:>3} clients  {row['rate']:8.0f} credits/s  p50 {row['p50']:6.1f} ms"
        f"  p99 {row['p99']:6.1f} ms  errors {row['errors']}  | CPU s per 1k credits: service"
        f" {row['svc_cpu_per_k']:.2f}, postgres {row['pg_cpu_per_k']:.2f}, clients"
        f" {row['client_cpu_per_k']:.2f} (machine has {row['wall_cpu_capacity_per_k']:.2f})  [{row['load']}]",
        flush=True,
    )
    if row["error_samples"]:
        print(f"    error samples: {row['error_samples']}", flush=True)
    return row


def pgbench(infra: Infra, clients: int, seconds: int) -> tuple[float, float]:
    """TPC-B on a scale-10 database of the same server: (tps, average latency ms)."""
    url = infra.database_url_for("pgbench")
    with psycopg.connect(infra.database_url, autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS pgbench")
        conn.execute("CREATE DATABASE pgbench")
    exe = str(pg_bin_dir() / "pgbench")
    subprocess.run([exe, "-i", "-q", "-s", "10", url], check=True, capture_output=True)
    out = subprocess.run(
        [exe, "-c", str(clients), "-j", "2", "-T", str(seconds), url],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    tps = float(first_group(r"tps = ([0-9.]+)", out))
    latency = float(first_group(r"latency average = ([0-9.]+) ms", out))
    return tps, latency


def verify_books(url: str) -> tuple[int, int]:
    """(wallets, wallets whose balance differs from the sum of their movements)."""
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE w.available_minor <> coalesce(m.a, 0)"
            " OR w.reserved_minor <> coalesce(m.r, 0)) FROM wallets w LEFT JOIN ("
            " SELECT seller_id, currency, sum(available_delta_minor) a, sum(reserved_delta_minor) r"
            " FROM wallet_movements GROUP BY 1, 2) m USING (seller_id, currency)"
        ).fetchone()
    return cast(tuple[int, int], row)  # aggregates without an outer GROUP BY: exactly one row


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=10, help="measured seconds per scenario")
    parser.add_argument("--warmup", type=float, default=2, help="unmeasured seconds before each scenario")
    parser.add_argument("--processes", type=int, default=2, help="client processes")
    parser.add_argument("--concurrency", type=int, default=32, help="calls in flight per client process")
    parser.add_argument("--batch", type=int, default=100, help="credits per ApplyBatch call")
    parser.add_argument(
        "--batch-concurrency", type=int, default=4, help="ApplyBatch calls in flight per process"
    )
    parser.add_argument("--pool-size", type=int, default=10, help="WALLET_DB_POOL_SIZE (max 2x connections)")
    parser.add_argument("--pgbench-clients", type=int, default=8)
    parser.add_argument("--pgbench-seconds", type=int, default=15)
    args = parser.parse_args()

    print(f"bench_wallet: {psutil.cpu_count()} cores, durable PostgreSQL (fsync=on, synchronous_commit=on)")
    print(f"start: {load()}", flush=True)
    infra, pg = start_infra(Path(tempfile.mkdtemp(prefix="bench-wallet-")))
    proc = None
    try:
        db_name = "wallet_bench"
        rows = []
        peaks = {}
        for coalesce in (False, True):
            mode = "coalesced" if coalesce else "plain"
            proc, address = start_service(infra, db_name, args.pool_size, coalesce)
            service = psutil.Process(proc.pid)
            wallet_url = infra.database_url_for(db_name)
            if not coalesce:
                seed_wallets(wallet_url, SPREAD_WALLETS)
            common = (address, service, pg)
            rows += [
                scenario(f"{mode}: sequential, 1 wallet", *common, 1, 1, 1, min(args.seconds, 5), 1),
                scenario(f"{mode}: hot wallet", *common, 1, args.processes, args.concurrency, args.seconds,
                         args.warmup),
                scenario(f"{mode}: {SPREAD_WALLETS:,} wallets", *common, SPREAD_WALLETS, args.processes,
                         args.concurrency, args.seconds, args.warmup),
            ]  # fmt: skip
            if coalesce:
                rows += [
                    scenario(f"batched x{args.batch}: hot wallet", *common, 1, args.processes,
                             args.batch_concurrency, args.seconds, args.warmup, args.batch),
                    scenario(f"batched x{args.batch}: {SPREAD_WALLETS:,} wallets", *common, SPREAD_WALLETS,
                             args.processes, args.batch_concurrency, args.seconds, args.warmup, args.batch),
                ]  # fmt: skip
            status = Path(f"/proc/{proc.pid}/status").read_text()
            peaks[mode] = int(first_group(r"VmHWM:\s+(\d+)", status)) / 1024
            proc.terminate()
            proc.wait(10)
            proc = None
        print(
            f"wallet_svc peak RSS: plain {peaks['plain']:.0f} MiB, coalesced+batched {peaks['coalesced']:.0f} MiB"
        )
        wallets, broken = verify_books(wallet_url)
        print(f"books: {wallets} wallets, {broken} differ from the sum of their movements", flush=True)
        tps, latency = pgbench(infra, args.pgbench_clients, args.pgbench_seconds)
        print(
            f"pgbench TPC-B (scale 10, {args.pgbench_clients} clients, {args.pgbench_seconds} s):"
            f" {tps:.0f} tps, average latency {latency:.1f} ms  [{load()}]"
        )
        for row in rows:
            if "sequential" not in row["name"]:
                print(f"{row['name']}: {row['rate'] / tps:.2f}x pgbench TPC-B tps")
        if broken or any(r["errors"] for r in rows):
            raise SystemExit("benchmark saw errors or unbalanced books")
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(10)
        infra.stop()


if __name__ == "__main__":
    main()
