"""Pay-in load benchmark: checkouts through the REST gateway in direct mode, PSP simulator included.

Starts the whole system as separate processes (the same supervisor as ``make run``, on free ports,
with a durable embedded PostgreSQL and Valkey in a temporary folder), then:

1. throughput — ``--orders`` orders, in checkouts of ``--sellers`` orders each (default 1), sent by
   ``--concurrency`` clients as fast as they are answered; reports orders fully settled (wallet and
   ledger updated) per second, end to end;
2. latency — an open-loop run at ``--rate`` orders per second for ``--seconds``; reports p50/p99 of
   ``POST /v1/payments``;
3. pgbench TPC-B on the same PostgreSQL server for the same duration, for the ratio;

and prints CPU seconds per process during the throughput run (where the time goes) and peak RSS.

    python benchmarks/bench_payin.py                # about 2-3 minutes on 2 cores
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import cast

import aiohttp
import psutil
import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks._parse import first_group  # noqa: E402
from svckit.devstack.infra import free_port, pg_bin_dir  # noqa: E402


def start_stack(data_dir: Path, payment_replicas: int) -> tuple[subprocess.Popen, dict[str, int]]:
    ports = {
        n: free_port() for n in ("pg", "redis", "payment", "ledger", "wallet", "recon", "gateway", "psp")
    }
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(
        {
            "DEV_PG_PORT": str(ports["pg"]),
            "DEV_REDIS_PORT": str(ports["redis"]),
            "PAYMENT_GRPC_PORT": str(ports["payment"]),
            "LEDGER_GRPC_PORT": str(ports["ledger"]),
            "WALLET_GRPC_PORT": str(ports["wallet"]),
            "RECON_GRPC_PORT": str(ports["recon"]),
            "GATEWAY_HTTP_PORT": str(ports["gateway"]),
            "PSP_SIM_PORT": str(ports["psp"]),
            "GATEWAY_RATE_LIMIT_REQUESTS": "1000000",
            "PAYMENT_RISK_VELOCITY_MAX_CHECKOUTS": "1000000",
            "PAYMENT_RISK_VELOCITY_MAX_AMOUNT_MINOR": "1000000000000",
            "LOG_LEVEL": "WARNING",
            "DEV_PAYMENT_REPLICAS": str(payment_replicas),
        }
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "svckit.devstack", "run", "--quiet", "--data-dir", str(data_dir)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 120
    assert proc.stdout is not None
    said: list[str] = []
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if "Stop: Ctrl-C" in line:
            return proc, ports
        said.append(line)
        if not line and proc.poll() is not None:
            break
    proc.kill()
    # The data folder is temporary: keep the logs somewhere that outlives it.
    kept = Path(tempfile.mkdtemp(prefix="bench-payin-failed-"))
    if (data_dir / "logs").exists():
        shutil.copytree(data_dir / "logs", kept / "logs")
    tail = "".join(said[-20:])
    raise SystemExit(f"the stack did not come up; its logs are in {kept / 'logs'}; it said:\n{tail}")


def processes(root: subprocess.Popen) -> dict[str, psutil.Process]:
    named: dict[str, psutil.Process] = {}
    for child in psutil.Process(root.pid).children(recursive=True):
        try:
            cmd = " ".join(child.cmdline())
        except psutil.Error:
            continue
        for name in ("payment_svc", "ledger_svc", "wallet_svc", "recon_svc", "gateway", "psp_sim"):
            if f"-m {name}" in cmd:
                n = sum(1 for k in named if k.split("#")[0] == name)
                named[name if n == 0 else f"{name}#{n + 1}"] = child  # replicas: payment_svc#2, ...
        if "valkey-server" in cmd:
            named["valkey"] = child
    pg = [c for c in psutil.Process(root.pid).children(recursive=True) if c.name() == "postgres"]
    for i, p in enumerate(pg):
        named[f"postgres#{i}"] = p
    return named


def start_profilers(procs: dict[str, psutil.Process], out: Path) -> list[subprocess.Popen]:
    """py-spy on every Python service (sampling at 100 Hz costs them a few percent)."""
    out.mkdir(parents=True, exist_ok=True)
    spies = []
    for name, p in procs.items():
        if name.split("#")[0] in ("payment_svc", "ledger_svc", "wallet_svc", "gateway", "psp_sim"):
            spies.append(
                subprocess.Popen(
                    [
                        str(Path(sys.executable).with_name("py-spy")),  # installed with the dev extras
                        "record",
                        "-r",
                        "100",
                        "-f",
                        "raw",
                        "-p",
                        str(p.pid),
                        "-o",
                        str(out / f"{name}.txt"),
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
    return spies


def cpu_seconds(procs: dict[str, psutil.Process]) -> dict[str, float]:
    out = {}
    for name, p in procs.items():
        try:
            t = p.cpu_times()
            out[name] = t.user + t.system
        except psutil.Error:
            out[name] = 0.0
    return out


ORDERS_PER_CHECKOUT = 1  # --sellers: orders (one per seller) in each cart


def checkout(run: str, i: int) -> dict:
    return {
        "checkout_id": f"bench_{run}_{i}",
        "buyer_info": {"buyer_id": f"buyer_{run}_{i % 1000}"},
        "payment_orders": [
            {
                "payment_order_id": f"bpo_{run}_{i}_{k}",
                "seller_account": f"seller_{(i + k) % 50}",
                "amount": f"{10 + (i + k) % 90}.{i % 100:02d}",
                "currency": "USD",
            }
            for k in range(ORDERS_PER_CHECKOUT)
        ],
        "payment_method": "pm_card_visa",
    }


def load_client(base: str, key: str, connections: int) -> aiohttp.ClientSession:
    """The load generator's HTTP client. aiohttp, not httpx: the generator shares the two cores with
    the system under test, and httpx costs several times the CPU per request."""
    return aiohttp.ClientSession(
        base_url=base,
        headers={"Authorization": f"Bearer {key}"},
        timeout=aiohttp.ClientTimeout(total=60),
        connector=aiohttp.TCPConnector(limit=connections),
    )


async def post(client: aiohttp.ClientSession, body: dict) -> float:
    started = time.perf_counter()
    async with client.post("/v1/payments", json=body, headers={"Idempotency-Key": body["checkout_id"]}) as r:
        if r.status != 201:
            raise RuntimeError(f"{r.status}: {(await r.text())[:300]}")
        await r.read()
    return time.perf_counter() - started


def settled(pg_url: str, run: str) -> int:
    with psycopg.connect(pg_url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM payment_orders WHERE checkout_id LIKE %s AND wallet_updated AND ledger_updated",
            (f"bench_{run}_%",),
        ).fetchone()
    return cast(tuple[int], row)[0]  # a count(*) without GROUP BY: exactly one row


def intents_per_order(pg_url: str, run: str) -> float:
    """PaymentIntents (each one create-and-confirm call to the PSP) per order, as our books record them."""
    with psycopg.connect(pg_url) as conn:
        # Aggregates without GROUP BY: exactly one row.
        intents, orders = cast(
            tuple[int, int],
            conn.execute(
                "SELECT count(DISTINCT psp_reference), count(*) FROM payment_orders WHERE checkout_id LIKE %s",
                (f"bench_{run}_%",),
            ).fetchone(),
        )
    return intents / orders


async def throughput(base: str, key: str, pg_url: str, orders: int, concurrency: int) -> dict:
    run = uuid.uuid4().hex[:6]
    queue: asyncio.Queue[int] = asyncio.Queue()
    checkouts = max(1, orders // ORDERS_PER_CHECKOUT)
    orders = checkouts * ORDERS_PER_CHECKOUT
    for i in range(checkouts):
        queue.put_nowait(i)
    latencies: list[float] = []

    async with load_client(base, key, concurrency) as client:

        async def worker() -> None:
            while not queue.empty():
                latencies.append(await post(client, checkout(run, queue.get_nowait())))

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        accepted_at = time.perf_counter() - started
    while (done := await asyncio.to_thread(settled, pg_url, run)) < orders:
        if time.perf_counter() - started > 600:
            raise RuntimeError(f"only {done}/{orders} settled after 10 minutes")
        await asyncio.sleep(0.2)
    total = time.perf_counter() - started
    return {
        "orders": orders,
        "orders_per_checkout": ORDERS_PER_CHECKOUT,
        "accepted_s": accepted_at,
        "settled_s": total,
        "accepted_per_s": orders / accepted_at,
        "settled_per_s": orders / total,
        "psp_payment_intents_per_order": round(await asyncio.to_thread(intents_per_order, pg_url, run), 3),
        "p50_ms": pct(latencies, 50),
        "p99_ms": pct(latencies, 99),
    }


async def open_loop(base: str, key: str, rate: float, seconds: float) -> dict:
    """Offer ``rate`` checkouts per second whatever the answers; latency of the accepted ones."""
    run = uuid.uuid4().hex[:6]
    accepted: list[float] = []
    statuses: dict[str, int] = {}

    async def one(client: aiohttp.ClientSession, body: dict) -> None:
        started = time.perf_counter()
        try:
            async with client.post(
                "/v1/payments", json=body, headers={"Idempotency-Key": body["checkout_id"]}
            ) as r:
                await r.read()
                status = str(r.status)
        except (aiohttp.ClientError, TimeoutError) as exc:
            status = type(exc).__name__
        statuses[status] = statuses.get(status, 0) + 1
        if status == "201":
            accepted.append(time.perf_counter() - started)

    async with load_client(base, key, 200) as client:
        tasks = []
        started = time.perf_counter()
        per_second = rate / ORDERS_PER_CHECKOUT  # the offered rate counts orders, as the goal does
        for i in range(int(per_second * seconds)):
            delay = started + i / per_second - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(client, checkout(run, i))))
        await asyncio.gather(*tasks)
    return {
        "rate_orders_per_s": rate,
        "checkouts_sent": int(rate / ORDERS_PER_CHECKOUT * seconds),
        "statuses": statuses,
        "orders_accepted_per_s": len(accepted) * ORDERS_PER_CHECKOUT / seconds,
        "p50_ms": pct(accepted, 50),
        "p99_ms": pct(accepted, 99),
        "max_ms": max(accepted) * 1000 if accepted else 0.0,
    }


def pct(values: list[float], p: float) -> float:
    if not values:
        return 0.0
    return (
        statistics.quantiles(values, n=100, method="inclusive")[int(p) - 1] * 1000
        if len(values) > 1
        else values[0] * 1000
    )


def pgbench(port: int, seconds: int, clients: int) -> float:
    env = {**os.environ, "PGHOST": "127.0.0.1", "PGPORT": str(port), "PGUSER": "postgres"}
    bench = str(pg_bin_dir() / "pgbench")
    subprocess.run([str(pg_bin_dir() / "createdb"), "bench"], env=env, capture_output=True)
    subprocess.run([bench, "-i", "-q", "-s", "10", "bench"], env=env, check=True, capture_output=True)
    out = subprocess.run(
        [bench, "-c", str(clients), "-j", "2", "-T", str(seconds), "bench"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return float(first_group(r"tps = ([\d.]+)", out))


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument(
        "--payment-replicas",
        type=int,
        default=1,
        help="payment_svc processes (DEV_PAYMENT_REPLICAS); the gateway calls them round-robin",
    )
    parser.add_argument(
        "--sellers", type=int, default=1, help="orders per checkout, one per seller (a multi-seller cart)"
    )
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument(
        "--profile",
        type=Path,
        help="write a py-spy profile (raw collapsed stacks) of each Python process during the throughput run here",
    )
    ns = parser.parse_args()
    global ORDERS_PER_CHECKOUT
    ORDERS_PER_CHECKOUT = ns.sellers
    with tempfile.TemporaryDirectory(prefix="bench-payin-") as tmp:
        data = Path(tmp)
        stack, ports = start_stack(data, ns.payment_replicas)
        try:
            key = (data / "dev_api_key").read_text().strip()
            base = f"http://127.0.0.1:{ports['gateway']}"
            pg_url = f"postgresql://postgres@127.0.0.1:{ports['pg']}/payments"
            await throughput(base, key, pg_url, 200, 16)  # warm-up: connections, caches, accounts
            procs = processes(stack)  # after the warm-up, so PostgreSQL's pooled backends are counted
            spies = start_profilers(procs, ns.profile) if ns.profile else []
            cpu_before, wall_before = cpu_seconds(procs), time.perf_counter()
            thr = await throughput(base, key, pg_url, ns.orders, ns.concurrency)
            for spy in spies:
                spy.send_signal(signal.SIGINT)
            for spy in spies:
                spy.wait(60)
            wall = time.perf_counter() - wall_before
            cpu = {k: v - cpu_before.get(k, 0.0) for k, v in cpu_seconds(procs).items()}
            lat = await open_loop(base, key, ns.rate, ns.seconds)
            rss = {}
            for name, p in procs.items():
                with contextlib.suppress(psutil.Error):
                    rss[name] = p.memory_info().rss / 2**20
            tps = pgbench(ports["pg"], int(ns.seconds), 8)
        finally:
            stack.send_signal(signal.SIGINT)
            stack.wait(60)
    grouped: dict[str, float] = {}
    for name, seconds in cpu.items():
        base_name = name.split("#")[0]
        grouped[base_name] = grouped.get(base_name, 0.0) + seconds
    print(
        json.dumps(
            {
                "throughput": thr,
                "latency": lat,
                "pgbench_tpcb_tps": tps,
                "settled_per_s_over_pgbench_tps": thr["settled_per_s"] / tps,
                "cpu_seconds_during_throughput": {
                    k: round(v, 1) for k, v in sorted(grouped.items(), key=lambda kv: -kv[1])
                },
                "cpu_ms_per_order": {
                    k: round(v * 1000 / thr["orders"], 2)
                    for k, v in sorted(grouped.items(), key=lambda kv: -kv[1])
                },
                "wall_seconds_throughput": round(wall, 1),
                "peak_rss_mib": {k: round(v) for k, v in rss.items() if not k.startswith("postgres#")},
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    asyncio.run(main())
