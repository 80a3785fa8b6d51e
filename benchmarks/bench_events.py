"""Event backbone benchmark: outbox insert → relay → stream → consumer effect committed.

    python benchmarks/bench_events.py [--events 30000] [--rate 500] [--latency-seconds 20]

Starts its own embedded PostgreSQL and Valkey (svckit.testing.Infra), one relay process
(``python -m svckit.events relay``) and consumer processes (benchmarks/_events_consumer.py); this
process is the producer. Two phases:

1. throughput: producers commit ``--events`` events as fast as they can (10 events per transaction
   with ``outbox.add_many``, 8 concurrent transactions); the figure is events whose effect is committed per second, from the
   first insert to the last effect;
2. latency: one event per transaction (``outbox.add``) at a steady ``--rate`` for
   ``--latency-seconds``; the delay of each event runs from its producer transaction (the outbox
   row's ``created_at``, just before the commit) to its effect row's ``clock_timestamp()`` inside the
   consumer transaction (committed with its batch right after), both on the database's clock.

Prints throughput, p50/p99/max delay and the peak RSS of every process, plus the load average.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # this checkout's svckit

import psutil
import sqlalchemy as sa
from redis.asyncio import Redis
from sqlalchemy.engine import make_url

from svckit.db import create_engine, ensure_database
from svckit.events import EventsSettings, create_all, outbox
from svckit.logging import configure_logging
from svckit.testing import Infra

ROOT = Path(__file__).resolve().parent.parent
GROUP = "bench-effects"


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Processes:
    """The benchmark's processes: peak RSS sampling and CPU time (which, unlike wall time, does not
    depend much on what else the machine runs)."""

    def __init__(self, pids: dict[str, int], infra: Infra) -> None:
        self.procs = {name: psutil.Process(pid) for name, pid in pids.items()}
        self.servers = {}
        if infra._pg is not None and infra._pg.proc is not None:
            self.servers["postgres"] = psutil.Process(infra._pg.proc.pid)
        if infra._valkey is not None and infra._valkey.proc is not None:
            self.servers["valkey"] = psutil.Process(infra._valkey.proc.pid)
        self.peak = dict.fromkeys(pids, 0)

    @staticmethod
    def _cpu(proc: psutil.Process, tree: bool) -> float:
        with contextlib.suppress(psutil.Error):
            t = proc.cpu_times()
            total = t.user + t.system + (t.children_user + t.children_system if tree else 0)
            if tree:
                for child in proc.children():
                    with contextlib.suppress(psutil.Error):
                        ct = child.cpu_times()
                        total += ct.user + ct.system
            return total
        return 0.0

    def cpu(self) -> dict[str, float]:
        out = {name: self._cpu(proc, False) for name, proc in self.procs.items()}
        out.update({name: self._cpu(proc, True) for name, proc in self.servers.items()})
        return out

    async def sample_rss(self) -> None:
        while True:
            for name, proc in self.procs.items():
                with contextlib.suppress(psutil.Error):
                    self.peak[name] = max(self.peak[name], proc.memory_info().rss)
            await asyncio.sleep(0.25)


def _cpu_report(before: dict[str, float], after: dict[str, float], events: int) -> str:
    per = {n: (after[n] - before.get(n, 0)) / events * 1e6 for n in after}
    return ", ".join(f"{n} {v:.0f}" for n, v in per.items()) + f"; total {sum(per.values()):.0f} µs/event"


async def _wait_effects(engine, count: int, timeout_s: float) -> float:
    deadline = time.monotonic() + timeout_s
    async with engine.connect() as conn:
        while True:
            n = (await conn.execute(sa.text("SELECT count(*) FROM bench_effects"))).scalar_one()
            await conn.commit()
            if n >= count:
                return time.time()
            if time.monotonic() > deadline:
                raise SystemExit(f"only {n} of {count} effects after {timeout_s}s")
            await asyncio.sleep(0.02)


async def throughput_phase(engine, stream: str, events: int) -> float:
    per_txn, workers = 10, 8
    txns = events // per_txn
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(txns):
        queue.put_nowait(i)

    async def producer() -> None:
        while not queue.empty():
            i = queue.get_nowait()
            async with engine.begin() as conn:
                await outbox.add_many(
                    conn,
                    stream=stream,
                    events=[outbox.NewEvent(f"order-{i}", "bench.tp", {"k": k}) for k in range(per_txn)],
                )

    started = time.time()
    await asyncio.gather(*(producer() for _ in range(workers)))
    produced = time.time()
    finished = await _wait_effects(engine, txns * per_txn, 150)
    total = txns * per_txn
    print(f"  produced {total} events in {produced - started:.2f}s ({total / (produced - started):.0f}/s)")
    return total / (finished - started)


async def latency_phase(engine, stream: str, rate: int, seconds: float, already: int) -> list[float]:
    count = int(rate * seconds)
    gate = asyncio.Semaphore(64)

    async def one(i: int) -> None:
        async with gate, engine.begin() as conn:
            await outbox.add(
                conn, stream=stream, aggregate_id=f"lat-{i % 97}", type="bench.lat", payload={"i": i}
            )

    start = time.monotonic()
    tasks = []
    for i in range(count):
        delay = start + i / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i)))
    await asyncio.gather(*tasks)
    achieved = count / (time.monotonic() - start)
    await _wait_effects(engine, already + count, 60)
    # Both ends on the database clock: the producer transaction's start (outbox created_at, just
    # before its commit, so the figure slightly overstates the delay) and the effect's
    # clock_timestamp() in the consumer transaction.
    async with engine.connect() as conn:
        rows = await conn.execute(
            sa.text(
                """
                SELECT EXTRACT(EPOCH FROM e.applied_at - o.created_at) * 1000
                FROM event_outbox o JOIN bench_effects e ON e.event_id = o.event_id::text
                WHERE o.type = 'bench.lat'
                """
            )
        )
        delays = [float(r[0]) for r in rows]
    print(f"  offered {rate}/s, achieved {achieved:.0f}/s, {len(delays)} events")
    return delays


def _spawn(args: list[str], env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, *args], cwd=ROOT, env=env, stdout=subprocess.DEVNULL)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=30_000)
    parser.add_argument("--rate", type=int, default=500)
    parser.add_argument("--latency-seconds", type=float, default=20)
    parser.add_argument("--consumers", type=int, default=2)
    args = parser.parse_args()
    configure_logging("bench", "WARNING", "console")

    infra = Infra.start()
    procs: list[subprocess.Popen] = []
    try:
        url = make_url(infra.database_url_for(f"{infra.prefix}_bench_events"))
        ensure_database(url.render_as_string(hide_password=False))
        db_url = url.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
        engine = create_engine(db_url, pool_size=40)
        async with engine.begin() as conn:
            await create_all(conn)
            await conn.exec_driver_sql(
                "CREATE TABLE bench_effects (event_id text NOT NULL, applied_at timestamptz NOT NULL)"
            )
        settings = EventsSettings(namespace="bench", redis_url=infra.redis_url)
        redis = Redis.from_url(infra.redis_url, decode_responses=True)
        await redis.xgroup_create(settings.keys.events, GROUP, id="0", mkstream=True)

        env = {
            **os.environ,
            "REDIS_URL": infra.redis_url,
            "DATABASE_URL": db_url,
            "EVENTS_NAMESPACE": "bench",
            "PYTHONPATH": str(ROOT),
            "LOG_LEVEL": "WARNING",
            "EVENTS_CONSUMER_BLOCK_MS": "1000",
        }
        pids = {"producer": os.getpid()}
        procs.append(_spawn(["-m", "svckit.events", "relay"], env))
        pids["relay"] = procs[-1].pid
        for c in range(args.consumers):
            procs.append(
                _spawn([str(ROOT / "benchmarks" / "_events_consumer.py"), db_url, GROUP, f"c{c}"], env)
            )
            pids[f"consumer-{c}"] = procs[-1].pid
        sampler = Processes(pids, infra)
        sampling = asyncio.create_task(sampler.sample_rss())
        await asyncio.sleep(2)  # let the processes start

        print(f"load average before: {os.getloadavg()}")
        print(f"throughput phase ({args.events} events, {args.consumers} consumer processes):")
        cpu0 = sampler.cpu()
        tps = await throughput_phase(engine, settings.keys.events, args.events)
        print(f"  end-to-end throughput: {tps:.0f} events/s")
        print(f"  CPU per event: {_cpu_report(cpu0, sampler.cpu(), args.events)}")
        print(
            f"latency phase ({args.rate} events/s for {args.latency_seconds:.0f}s, one event per transaction):"
        )
        delays = await latency_phase(
            engine, settings.keys.events, args.rate, args.latency_seconds, args.events
        )
        print(
            f"  commit→effect delay: p50 {_percentile(delays, 0.5):.1f} ms, p99 {_percentile(delays, 0.99):.1f} ms, "
            f"max {max(delays):.1f} ms"
        )
        sampling.cancel()
        print("peak RSS: " + ", ".join(f"{n} {v / 2**20:.0f} MiB" for n, v in sampler.peak.items()))
        print(f"load average after: {os.getloadavg()}")
        await redis.aclose()
        await engine.dispose()
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        infra.stop()


if __name__ == "__main__":
    asyncio.run(main())
