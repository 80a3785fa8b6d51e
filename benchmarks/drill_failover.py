"""Fail-over drills: a PostgreSQL primary or a Valkey Cluster primary killed mid pay-in, nothing lost.

``--target postgres`` (default) starts the stack of ``make run`` with ``DEV_PG_STANDBY=1`` (a streaming
standby made by ``pg_basebackup``, synchronous replication, the services on a two-host URL with
``target_session_attrs=read-write``); ``--target valkey`` with ``DEV_REDIS_CLUSTER=1`` (three primaries
with a replica each; the services on RedisCluster). Both on free ports in a temporary folder, then:

1. ``--clients`` buyers check out in direct mode through the gateway, each retrying a failed request
   with the same ``Idempotency-Key`` (what a real client does) until it is answered;
2. after ``--kill-after`` seconds, ``kill -9`` of the primary's postmaster, and the supervisor promotes
   the standby (``pg_ctl promote``); or of the Valkey node serving the ``{payments}`` slot, and its
   replica takes the slots over (the supervisor restarts the killed node, which rejoins as a replica).
   The services reconnect on their own; events the lost Valkey primary had not yet replicated are
   published again from the outbox (the relay marks a row sent only after Redis acknowledged it);
3. the load runs on for ``--seconds`` in all, then the drill waits for settlement and checks, on the
   (promoted) database: every order the gateway answered ``success`` exists as ``SUCCESS`` with its wallet
   and ledger updated and its ledger transaction (balanced entries) present, and ``VerifyLedger``
   passes (balanced, hash chain intact, balances equal their entries).

Exit code 0 when every check holds, 1 otherwise.

    python benchmarks/drill_failover.py                     # about a minute on 2 cores
    python benchmarks/drill_failover.py --target valkey
    python benchmarks/drill_failover.py --seconds 30 --kill-after 10 --clients 8
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import psycopg
from rich.console import Console

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from redis.crc import key_slot  # noqa: E402

from svckit.devstack import supervisor  # noqa: E402
from svckit.devstack.infra import free_port  # noqa: E402
from svckit.gen.ledger.v1 import ledger_service_pb2 as lpb  # noqa: E402
from svckit.gen.ledger.v1 import ledger_service_pb2_grpc as lpb_grpc  # noqa: E402

_ENV = {
    "GATEWAY_RATE_LIMIT_REQUESTS": "1000000",
    "PAYMENT_RISK_VELOCITY_MAX_CHECKOUTS": "1000000",
    "PAYMENT_RISK_VELOCITY_MAX_AMOUNT_MINOR": "1000000000000",
    "LOG_LEVEL": "WARNING",
}


@dataclass
class Load:
    acknowledged: dict[str, str] = field(default_factory=dict)
    """payment_order_id -> state the gateway answered (only answered checkouts)."""
    retries: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    stop: asyncio.Event = field(default_factory=asyncio.Event)


def start_stack(data_dir: Path, target: str, replicas: int) -> supervisor.Stack:
    for name in (
        "DATABASE_URL",
        "REDIS_URL",
        "REDIS_CLUSTER",
        "DEV_PG_STANDBY",
        "DEV_REDIS_CLUSTER",
        "DEV_PAYMENT_REPLICAS",
    ):
        os.environ.pop(name, None)
    ports = {
        v: str(free_port())
        for v in (
            "DEV_PG_PORT", "DEV_PG_STANDBY_PORT", "DEV_REDIS_PORT", "PAYMENT_GRPC_PORT", "LEDGER_GRPC_PORT",
            "WALLET_GRPC_PORT", "RECON_GRPC_PORT", "GATEWAY_HTTP_PORT", "PSP_SIM_PORT",
        )
    }  # fmt: skip
    os.environ.update({**ports, **_ENV})  # plan_children reads the ports from the environment
    os.environ["DEV_PG_STANDBY" if target == "postgres" else "DEV_REDIS_CLUSTER"] = "1"
    os.environ["DEV_REPLICAS"] = str(replicas)  # processes of every service, callers round-robin
    (data_dir / "logs").mkdir(parents=True, exist_ok=True)
    supervisor.console = Console(file=open(data_dir / "logs" / "supervisor.log", "a"), highlight=False)  # noqa: SIM115
    stack = supervisor.Stack(data_dir, echo_logs=False)
    stack.start_infra()
    stack.start_children()
    stack.wait_ready(120)
    return stack


async def buyer(client: aiohttp.ClientSession, run: str, n: int, load: Load) -> None:
    i = 0
    while not load.stop.is_set():
        checkout_id = f"drill_{run}_{n}_{i}"
        body = {
            "checkout_id": checkout_id,
            "buyer_info": {"buyer_id": f"buyer_{n}"},
            "payment_orders": [
                {
                    "payment_order_id": f"{checkout_id}_{k}",
                    "seller_account": f"seller_{(n + k) % 7}",
                    "amount": f"{10 + (i + k) % 50}.{i % 100:02d}",
                    "currency": "USD",
                }
                for k in range(2)
            ],
            "payment_method": "pm_card_visa",
        }
        # A client that got no answer asks again with the same key until it gets one (bounded).
        for _attempt in range(120):
            try:
                async with client.post(
                    "/v1/payments", json=body, headers={"Idempotency-Key": checkout_id}
                ) as r:
                    if r.status in (200, 201):
                        answer = await r.json()
                        for order in answer["payment_orders"]:
                            load.acknowledged[order["payment_order_id"]] = order["state"]
                        break
                    key = f"HTTP {r.status}"
            except (TimeoutError, aiohttp.ClientError) as exc:
                key = type(exc).__name__
            load.errors[key] = load.errors.get(key, 0) + 1
            load.retries += 1
            await asyncio.sleep(0.25)
        i += 1


async def poll(condition: Callable[[], bool], seconds: float) -> None:
    """Until ``condition`` holds or ``seconds`` pass (the caller looks at which)."""
    for _ in range(int(seconds / 0.1)):
        if condition():
            return
        await asyncio.sleep(0.1)


async def kill_postgres_primary(stack: supervisor.Stack) -> list[str]:
    """kill -9 of the primary; the supervisor promotes the standby. Returns what broke."""
    assert stack.pg is not None and stack.standby is not None, "the stack has no standby"
    pid = stack.pg.running_pid()
    assert pid is not None
    old_port = stack.pg.port
    os.kill(pid, signal.SIGKILL)
    killed = time.monotonic()
    print(f"kill -9 of the PostgreSQL primary (port {old_port})")
    await poll(lambda: stack.standby is None, 60)
    if stack.standby is not None:
        return ["the standby was not promoted within 60 s"]
    print(f"standby promoted {time.monotonic() - killed:.1f} s after the kill (port {stack.pg.port})")
    return []


async def kill_valkey_primary(stack: supervisor.Stack) -> list[str]:
    """kill -9 of the cluster node serving the payment events' slot; its replica takes over."""
    cluster = stack.valkey_cluster
    assert cluster is not None, "the stack has no Valkey cluster"
    slot = key_slot(b"{payments}:events")
    owner = next(n for n in cluster.primary_nodes() if slot_owner(n.port, slot))
    assert owner.proc is not None
    owner.proc.send_signal(signal.SIGKILL)
    killed = time.monotonic()
    print(f"kill -9 of the Valkey primary on port {owner.port} (serving slot {slot} of {{payments}})")
    await poll(
        lambda: any(n.port != owner.port and slot_owner(n.port, slot) for n in cluster.primary_nodes()), 60
    )
    successor = [n.port for n in cluster.primary_nodes() if n.port != owner.port and slot_owner(n.port, slot)]
    if not successor:
        return ["no replica took over the slot within 60 s"]
    print(f"replica on port {successor[0]} serves the slot {time.monotonic() - killed:.1f} s after the kill")
    return []


def slot_owner(port: int, slot: int) -> bool:
    """Whether the node on ``port`` says it serves ``slot`` (CLUSTER MYSHARDID would need Valkey 8)."""
    import redis

    try:
        with redis.Redis(port=port, socket_timeout=1) as client:
            nodes = client.execute_command("CLUSTER", "NODES")
    except redis.RedisError:
        return False
    text = nodes.decode() if isinstance(nodes, bytes) else str(nodes)
    for line in text.splitlines():
        parts = line.split()
        if "myself" in parts[2] and "master" in parts[2]:
            for r in parts[8:]:
                low, _, high = r.partition("-")
                if low.isdigit() and int(low) <= slot <= int(high or low):
                    return True
    return False


def query(url: str, database: str, sql: str, params: tuple = ()) -> list[tuple]:
    conninfo = url.rsplit("/", 1)[0] + f"/{database}"
    with psycopg.connect(conninfo, autocommit=True, connect_timeout=5) as conn:
        return conn.execute(sql, params).fetchall()


async def verify_ledger(stack: supervisor.Stack) -> tuple[bool, list[str]]:
    ledger = next(c for c in stack.children if c.name == "ledger")
    async with stack.tls.probe_security().aio_channel(ledger.address) as channel:
        reply = await lpb_grpc.LedgerServiceStub(channel).VerifyLedger(lpb.VerifyLedgerRequest(), timeout=60)
    return reply.ok, [str(f) for f in reply.findings][:5]


async def drill(args: argparse.Namespace) -> int:
    data_dir = Path(tempfile.mkdtemp(prefix="drill-"))
    started = time.monotonic()
    stack = start_stack(data_dir, args.target, args.replicas)
    print(f"stack up in {time.monotonic() - started:.1f} s (data and logs in {data_dir})")
    supervising = threading.Thread(target=stack.supervise, daemon=True)
    supervising.start()
    gateway = next(c for c in stack.children if c.name == "gateway")
    load = Load()
    run = uuid.uuid4().hex[:6]
    broken: list[str] = []
    try:
        async with aiohttp.ClientSession(
            base_url=gateway.url,
            headers={"Authorization": f"Bearer {stack.dev_key}"},
            timeout=aiohttp.ClientTimeout(total=15),
        ) as client:
            buyers = [asyncio.create_task(buyer(client, run, n, load)) for n in range(args.clients)]
            await asyncio.sleep(args.kill_after)
            before = len(load.acknowledged)
            killed = time.monotonic()
            broken += await (kill_postgres_primary if args.target == "postgres" else kill_valkey_primary)(
                stack
            )
            # First order acknowledged after the fail-over: how long the services took to reconnect.
            await poll(lambda: len(load.acknowledged) > before, 60)
            print(f"first order answered {time.monotonic() - killed:.1f} s after the kill")
            await asyncio.sleep(max(0.0, args.seconds - args.kill_after - (time.monotonic() - killed)))
            load.stop.set()
            await asyncio.gather(*buyers)
        assert stack.pg is not None
        url = stack.pg.url
        success = sorted(o for o, state in load.acknowledged.items() if state == "success")
        print(
            f"acknowledged {len(load.acknowledged)} orders ({len(success)} success); "
            f"{load.retries} retried requests {dict(sorted(load.errors.items()))}"
        )
        # Settlement (outbox -> stream -> wallet and ledger) finishes after the answers.
        deadline = time.monotonic() + args.settle_timeout
        while True:
            rows = query(
                url,
                "payments",
                "SELECT payment_order_id, state, wallet_updated AND ledger_updated FROM payment_orders"
                " WHERE payment_order_id = ANY(%s)",
                (success,),
            )
            unsettled = [r for r in rows if not r[2]]
            if (len(rows) == len(success) and not unsettled) or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
        found = {r[0]: r for r in rows}
        missing = [o for o in success if o not in found]
        if missing:
            broken.append(f"{len(missing)} acknowledged orders missing on the new primary: {missing[:5]}")
        wrong = [r for r in rows if r[1] != "SUCCESS"]
        if wrong:
            broken.append(f"{len(wrong)} acknowledged orders not SUCCESS: {wrong[:5]}")
        if unsettled:
            broken.append(
                f"{len(unsettled)} orders not settled after {args.settle_timeout:.0f} s: {unsettled[:5]}"
            )
        booked = {
            ref: (n, debits, credits)
            for ref, n, debits, credits in query(
                url,
                "ledger",
                "SELECT t.external_ref, count(e.id),"
                " coalesce(sum(e.amount) FILTER (WHERE e.direction = 'D'), 0),"
                " coalesce(sum(e.amount) FILTER (WHERE e.direction = 'C'), 0)"
                " FROM transactions t JOIN entries e ON e.transaction_id = t.id"
                " WHERE t.external_ref = ANY(%s) GROUP BY t.external_ref",
                (success,),
            )
        }
        unbooked = [o for o in success if o not in booked]
        if unbooked:
            broken.append(f"{len(unbooked)} acknowledged orders with no ledger transaction: {unbooked[:5]}")
        unbalanced = [o for o, (_, d, c) in booked.items() if d != c]
        if unbalanced:
            broken.append(f"unbalanced ledger transactions: {unbalanced[:5]}")
        (unpublished,) = query(
            url, "payments", "SELECT count(*) FROM event_outbox WHERE published_at IS NULL"
        )[0]
        if unpublished:
            broken.append(f"{unpublished} committed outbox events never published")
        ok, findings = await verify_ledger(stack)
        if not ok:
            broken.append(f"VerifyLedger: {findings}")
        print(
            f"checked {len(success)} success orders on the database after the fail-over: {len(booked)} booked"
        )
    finally:
        stack.stop_requested.set()
        supervising.join(10)
        stack.stop()
    if broken:
        print("BROKEN:\n  " + "\n  ".join(broken))
        print(f"logs kept in {data_dir / 'logs'}")
        return 1
    print("OK: nothing acknowledged was lost; the ledger verifies")
    shutil.rmtree(data_dir, ignore_errors=True)
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--target", choices=["postgres", "valkey"], default="postgres", help="what to kill")
    parser.add_argument("--replicas", type=int, default=1, help="processes of every service (DEV_REPLICAS)")
    parser.add_argument("--clients", type=int, default=6, help="concurrent buyers")
    parser.add_argument("--seconds", type=float, default=20.0, help="load duration in all")
    parser.add_argument("--kill-after", type=float, default=6.0, help="seconds of load before the kill")
    parser.add_argument("--settle-timeout", type=float, default=90.0)
    args = parser.parse_args()
    if not 0 < args.kill_after < args.seconds:
        parser.error("--kill-after must be within --seconds")
    raise SystemExit(asyncio.run(drill(args)))


if __name__ == "__main__":
    main()
