"""Ledger throughput: two-entry postings per second through gRPC, one per call and batched, over 10 hot
accounts and over 10,000 accounts, next to PostgreSQL's own pgbench TPC-B on the same server.

    python benchmarks/bench_ledger.py            # whole run, about 2.5 minutes
    python benchmarks/bench_ledger.py --seconds 5 --pgbench-seconds 5   # quick look
    python benchmarks/bench_ledger.py --coalesce on --no-batched  # one per call, coalescing only

One-per-call scenarios run against servers with coalescing on and off (``--coalesce both``, the
default: two server sets on the same database, the idle set costs nothing).

Starts its own durable embedded PostgreSQL (fsync on, synchronous_commit on), runs the ledger server
as separate processes (``python -m ledger_svc serve``) and the load from several client processes,
and prints throughput, p50/p99 latency per call, the servers' peak RSS and the load average.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import multiprocessing
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import cast

import grpc
import psutil
import psycopg
from grpc_health.v1 import health_pb2, health_pb2_grpc

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks._ledger_load import LoadSpec, run_client, serve_canned, warm_up  # noqa: E402
from benchmarks._parse import first_group  # noqa: E402
from svckit.devstack.infra import EmbeddedPostgres, free_port, pg_bin_dir, port_open, remove_tree  # noqa: E402
from svckit.testing import Infra  # noqa: E402
from svckit.tls import from_environment  # noqa: E402


def _load() -> str:
    return "load average {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def start_servers(
    database_url: str,
    database: str,
    count: int,
    pool_size: int,
    coalesce: dict[str, str] | None = None,
    migrate: bool = True,
) -> list[tuple[subprocess.Popen, str]]:
    """``coalesce``: LEDGER_COALESCE_* settings of these servers."""
    servers = []
    for i in range(count):
        port = free_port()
        env = {
            **os.environ,
            "LEDGER_DATABASE_URL": database_url,
            "LEDGER_DATABASE_NAME": database,
            "LEDGER_GRPC_PORT": str(port),
            "LEDGER_METRICS_PORT": "0",
            "LEDGER_DB_POOL_SIZE": str(pool_size),
            "LEDGER_LOG_LEVEL": "WARNING",
            "LEDGER_LOG_FORMAT": "json",
            # Only the first one migrates; the others wait for it below.
            "LEDGER_MIGRATE_ON_START": "true" if i == 0 and migrate else "false",
            **{f"LEDGER_COALESCE_{k.upper()}": v for k, v in (coalesce or {}).items()},
            **_ledger_identity(),
        }
        proc = subprocess.Popen([sys.executable, "-m", "ledger_svc", "serve"], cwd=ROOT, env=env)
        address = f"127.0.0.1:{port}"
        _wait_healthy(proc, address)
        servers.append((proc, address))
    return servers


def _ledger_identity() -> dict[str, str]:
    """The ledger's certificate, beside the clients' (TLS_* of this process, set by :func:`use_pki`)."""
    if "TLS_CA_FILE" not in os.environ:
        return {}
    folder = Path(os.environ["TLS_CA_FILE"]).parent
    return {
        "LEDGER_TLS_CERT_FILE": str(folder / "ledger.crt"),
        "LEDGER_TLS_KEY_FILE": str(folder / "ledger.key"),
    }


def use_pki(infra: Infra) -> None:
    """Call as ``payment`` (may post) from this process and the client processes it starts."""
    os.environ.update(infra.tls_env("payment"))


def stop_servers(servers: list[tuple[subprocess.Popen, str]]) -> None:
    """Terminate every server, then wait for each (killing one that does not stop in 15 s)."""
    for proc, _ in servers:
        proc.terminate()
    for proc, _ in servers:
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()


def _wait_healthy(proc: subprocess.Popen, address: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    with from_environment().channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"ledger server exited with {proc.returncode}")
            try:
                if (
                    stub.Check(health_pb2.HealthCheckRequest(), timeout=1).status  # type: ignore[attr-defined]  # the stub declares no methods
                    == health_pb2.HealthCheckResponse.SERVING
                ):
                    return
            except grpc.RpcError:
                pass
            time.sleep(0.1)
    raise TimeoutError(f"ledger server on {address} not healthy")


def peak_rss_mib(pid: int) -> float:
    """Peak resident set size of a process so far (VmHWM), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(procs: list[psutil.Process]) -> float:
    total = 0.0
    for proc in procs:
        try:
            times = proc.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def _batch_statements(database_url: str) -> int:
    """How many batch statements took the fast path so far (one chain_queue_batches row each)."""
    if not database_url:
        return 0
    with psycopg.connect(database_url, autocommit=True) as conn:
        # A sequence reads as exactly one row.
        row = cast(
            tuple[int, bool],
            conn.execute("SELECT last_value, is_called FROM chain_queue_batches_id_seq").fetchone(),
        )
    return row[0] if row[1] else 0


def _py_spy() -> str:
    """The venv's py-spy (installed with the dev extras) when the venv's bin is not on PATH."""
    local = Path(sys.executable).parent / "py-spy"
    return str(local) if local.exists() else "py-spy"


def _pg_cpu_by_kind(procs: list[psutil.Process]) -> dict[str, float]:
    """CPU seconds of PostgreSQL's processes by kind (backend type, or the database of a backend)."""
    kinds: dict[str, float] = {}
    for proc in procs:
        try:
            title = " ".join(proc.cmdline())
            times = proc.cpu_times()
        except psutil.NoSuchProcess:
            continue
        parts = title.split()
        kind = "postmaster" if not title.startswith("postgres:") else " ".join(parts[1:3])
        kinds[kind] = kinds.get(kind, 0.0) + times.user + times.system
    return kinds


def scenario(name: str, addresses: list[str], clients: int, concurrency: int, accounts: int, batch: int,
             seconds: float, servers: list[psutil.Process], postgres: psutil.Process,
             profile: float = 0.0, database_url: str = "") -> dict:  # fmt: skip
    specs = [
        LoadSpec(addresses[i % len(addresses)], accounts, concurrency, seconds, batch, seed=i + 1)
        for i in range(clients)
    ]
    ctx = multiprocessing.get_context("spawn")
    pg_procs = [postgres, *postgres.children(recursive=True)]
    server_cpu, pg_cpu = cpu_seconds(servers), cpu_seconds(pg_procs)
    pg_split = _pg_cpu_by_kind(pg_procs) if profile else {}
    statements = _batch_statements(database_url)
    started = time.perf_counter()
    spy = None
    if profile:
        # Sample the first server while the load runs (raw collapsed stacks; see docs/benchmarks.md).
        out = Path(tempfile.gettempdir()) / ("ledger-" + re.sub(r"[^a-z0-9]+", "-", name.lower()) + ".txt")
        spy = subprocess.Popen(
            [_py_spy(), "record", "-r", "100", "-d", str(int(profile)), "-f", "raw", "--nonblocking",
             "-o", str(out), "--pid", str(servers[0].pid)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
    with concurrent.futures.ProcessPoolExecutor(clients, mp_context=ctx) as pool:
        results = list(pool.map(run_client, specs))
    elapsed = time.perf_counter() - started
    if spy is not None:
        spy.wait()
    # PostgreSQL backends come and go with the pools; count those alive now too.
    server_cpu = cpu_seconds(servers) - server_cpu
    pg_cpu = cpu_seconds([postgres, *postgres.children(recursive=True)]) - pg_cpu
    client_cpu = sum(r["cpu_seconds"] for r in results)
    latencies = sorted(lat for r in results for lat in r["latencies"])
    postings = sum(r["postings"] for r in results)
    errors: dict[str, int] = {}
    for r in results:
        for k, v in r["errors"].items():
            errors[k] = errors.get(k, 0) + v
    # Process start-up is outside the measured window of each client: rate over the load duration.
    rate = postings / seconds
    p50 = statistics.median(latencies) * 1000 if latencies else float("nan")
    p99 = latencies[int(len(latencies) * 0.99) - 1] * 1000 if latencies else float("nan")
    line = (
        f"{name:<50} {rate:>9,.0f} postings/s  calls {len(latencies):>7,}  p50 {p50:7.2f} ms  p99 {p99:7.2f} ms"
        f"  errors {errors or 0}  ({clients} client procs x {concurrency} in flight; wall {elapsed:.1f}s; {_load()})"
    )
    print(line, flush=True)
    if postings and database_url:
        groups = _batch_statements(database_url) - statements
        if groups:
            print(
                f"{'':<50} {groups:,} fast-path batch statements, {postings / groups:.1f} postings each",
                flush=True,
            )
    if postings and profile:
        after = _pg_cpu_by_kind([postgres, *postgres.children(recursive=True)])
        split = {k: (v - pg_split.get(k, 0.0)) * 1e6 / postings for k, v in after.items()}
        print(f"{'':<50} PostgreSQL CPU per posting by process: "
              + ", ".join(f"{k} {v:.0f} us" for k, v in sorted(split.items(), key=lambda kv: -kv[1]) if v >= 1),
              flush=True)  # fmt: skip
    if postings:
        per = 1e6 / postings
        print(
            f"{'':<50} CPU per posting: ledger servers {server_cpu * per:6.0f} us, PostgreSQL {pg_cpu * per:6.0f} us,"
            f" gRPC clients {client_cpu * per:6.0f} us",
            flush=True,
        )
    per = 1e6 / postings if postings else float("nan")
    return {"name": name, "rate": rate, "p50": p50, "p99": p99, "errors": errors,
            "server_us": server_cpu * per, "pg_us": pg_cpu * per, "client_us": client_cpu * per}  # fmt: skip


def grpc_floor(seconds: float, clients: int, concurrency: int) -> None:
    """Server CPU per call of a PostTransaction handler that does nothing, with the same load as the
    one-per-call scenarios: the part of a single posting's cost that is the transport's."""
    ctx = multiprocessing.get_context("spawn")
    for with_interceptor in (False, True):
        port = free_port()
        server = ctx.Process(target=serve_canned, args=(port, with_interceptor), daemon=True)
        server.start()
        try:
            _wait_port(port)
            proc = psutil.Process(server.pid)
            before = cpu_seconds([proc])
            specs = [
                LoadSpec(f"127.0.0.1:{port}", 10, concurrency, seconds, 0, seed=i + 1) for i in range(clients)
            ]
            with concurrent.futures.ProcessPoolExecutor(clients, mp_context=ctx) as pool:
                results = list(pool.map(run_client, specs))
            calls = sum(r["postings"] for r in results)
            used = cpu_seconds([proc]) - before
            client_cpu = sum(r["cpu_seconds"] for r in results)
        finally:
            server.kill()
            server.join()
        label = "gRPC floor: no-op PostTransaction, " + (
            "svckit request context" if with_interceptor else "bare"
        )
        print(
            f"{label:<50} {calls / seconds:>9,.0f} calls/s     server CPU per call {used * 1e6 / max(calls, 1):5.0f} us,"
            f" client {client_cpu * 1e6 / max(calls, 1):5.0f} us  ({_load()})",
            flush=True,
        )


def _wait_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not port_open("127.0.0.1", port):
        if time.monotonic() > deadline:
            raise TimeoutError(f"nothing listening on {port}")
        time.sleep(0.05)


def run_pgbench(pg: EmbeddedPostgres, seconds: int, clients: int) -> float:
    bin_dir = pg_bin_dir()
    conn = ["-h", pg.host, "-p", str(pg.port), "-U", "postgres"]
    subprocess.run([str(bin_dir / "createdb"), *conn, "pgbench"], check=True, capture_output=True)
    # Scale 10: ten branch rows that every TPC-B transaction updates, like our ten hot accounts.
    subprocess.run([str(bin_dir / "pgbench"), *conn, "-i", "-s", "10", "-q", "pgbench"], check=True,
                   capture_output=True)  # fmt: skip
    out = subprocess.run(
        [str(bin_dir / "pgbench"), *conn, "-c", str(clients), "-j", "2", "-T", str(seconds), "-M", "prepared",
         "pgbench"],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    tps = float(first_group(r"tps = ([\d.]+)", out))
    latency = re.search(r"latency average = ([\d.]+) ms", out)
    print(
        f"{'pgbench TPC-B (scale 10, ' + str(clients) + ' clients, prepared)':<50} {tps:>9,.0f} tps"
        f"  latency avg {latency.group(1) if latency else '?'} ms  ({_load()})",
        flush=True,
    )
    return tps


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=12.0, help="load duration per scenario")
    parser.add_argument("--pgbench-seconds", type=int, default=15)
    parser.add_argument("--servers", type=int, default=2, help="ledger server processes (stateless replicas)")
    parser.add_argument("--clients", type=int, default=3, help="client processes for one-per-call scenarios")
    parser.add_argument("--concurrency", type=int, default=24, help="calls in flight per client process")
    parser.add_argument(
        "--batch-concurrency", type=int, default=4, help="batches in flight per client process"
    )
    parser.add_argument(
        "--pool-size", type=int, default=48, help="database connections per server (kept >= calls in flight)"
    )
    parser.add_argument(
        "--coalesce", choices=("on", "off", "both"), default="both",
        help="one-per-call scenarios against servers with LEDGER_COALESCE_POSTINGS on, off, or each",
    )  # fmt: skip
    parser.add_argument("--coalesce-window", type=float, default=None, help="LEDGER_COALESCE_WINDOW_SECONDS")
    parser.add_argument("--coalesce-in-flight", type=int, default=None, help="LEDGER_COALESCE_MAX_IN_FLIGHT")
    parser.add_argument(
        "--batch-in-flight", type=int, default=None,
        help="LEDGER_BATCH_MAX_IN_FLIGHT of the servers (PostTransactions units of work at once per process)",
    )  # fmt: skip
    parser.add_argument("--no-batched", action="store_true", help="skip the PostTransactions scenarios")
    parser.add_argument("--no-single", action="store_true", help="skip the one-per-call scenarios")
    parser.add_argument(
        "--no-floor", action="store_true", help="skip the gRPC floor (no-op server) measurement"
    )
    parser.add_argument(
        "--profile", type=float, default=0.0,
        help="py-spy the first server for this many seconds in each scenario (writes /tmp/ledger-*.txt)",
    )  # fmt: skip
    args = parser.parse_args()
    modes = ["on", "off"] if args.coalesce == "both" else [args.coalesce]
    if args.batch_in_flight is not None:
        os.environ["LEDGER_BATCH_MAX_IN_FLIGHT"] = str(args.batch_in_flight)  # the servers inherit it
    coalesce_on = {"postings": "true"}
    if args.coalesce_window is not None:
        coalesce_on["window_seconds"] = str(args.coalesce_window)
    if args.coalesce_in_flight is not None:
        coalesce_on["max_in_flight"] = str(args.coalesce_in_flight)

    tmp = Path(tempfile.mkdtemp(prefix="bench-ledger-"))
    pg = EmbeddedPostgres(tmp / "pg", port=free_port(), durable=True).start()
    infra = Infra(database_url=pg.url, redis_url="redis://127.0.0.1:1/0", _pg=pg, _tmp=tmp)
    use_pki(infra)
    servers: list[tuple[subprocess.Popen, str]] = []
    try:
        print(
            f"ledger benchmark: 2-core machine, durable embedded PostgreSQL (fsync on); {_load()}", flush=True
        )
        tps = run_pgbench(pg, args.pgbench_seconds, clients=8)
        if not args.no_floor and not args.no_single:
            grpc_floor(min(args.seconds, 6.0), args.clients, args.concurrency)
        sets: dict[str, list[tuple[subprocess.Popen, str]]] = {}
        for i, mode in enumerate(modes):
            sets[mode] = start_servers(
                infra.database_url, f"{infra.prefix}_ledger", args.servers, pool_size=args.pool_size,
                coalesce=coalesce_on if mode == "on" else {"postings": "false"}, migrate=i == 0,
            )  # fmt: skip
            servers += sets[mode]
        postgres = psutil.Process(pg.pid)
        ledger_url = infra.database_url_for(f"{infra.prefix}_ledger")
        results = []
        for accounts in (10, 10_000):
            warm_up(servers[0][1], accounts)
            for mode, group in sets.items() if not args.no_single else ():
                addresses = [address for _, address in group]
                procs = [psutil.Process(proc.pid) for proc, _ in group]
                results.append(scenario(f"one per call, coalescing {mode}, {accounts:,} accounts", addresses,
                                        args.clients, args.concurrency, accounts, 0, args.seconds, procs,
                                        postgres, args.profile, ledger_url))  # fmt: skip
            if not args.no_batched:
                addresses = [address for _, address in servers[: args.servers]]
                procs = [psutil.Process(proc.pid) for proc, _ in servers[: args.servers]]
                results.append(scenario(f"batched 100 per call, {accounts:,} accounts", addresses, 2,
                                        args.batch_concurrency, accounts, 100, args.seconds, procs,
                                        postgres, args.profile, ledger_url))  # fmt: skip
        rss = ", ".join(f"{peak_rss_mib(proc.pid):.0f}" for proc, _ in servers)
        print(f"peak RSS of the {len(servers)} ledger server processes: {rss} MiB", flush=True)
        for r in results:
            print(f"{r['name']:<50} = {r['rate'] / tps:5.2f} x pgbench TPC-B tps", flush=True)
    finally:
        stop_servers(servers)
        pg.stop()
        remove_tree(tmp)


if __name__ == "__main__":
    main()
