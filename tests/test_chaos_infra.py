"""The fault campaign's servers shared between seeds (benchmarks/chaos.py, docs/reliability.md "Seed
time"): a seed must start from nothing an earlier one left, and a killed PostgreSQL must not lose an
acknowledged commit even though it runs without fsync."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import psycopg
import pytest
import redis

ROOT = Path(__file__).resolve().parent.parent


def _runner():
    spec = importlib.util.spec_from_file_location("chaos_runner", ROOT / "benchmarks" / "chaos.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("chaos_runner", module)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_shared_servers_are_reset_to_nothing_between_seeds_and_keep_every_commit(tmp_path):
    shared = _runner().SharedInfra(tmp_path / "infra").start()
    try:
        # What a seed leaves: its databases (with data) and its Valkey keys.
        with psycopg.connect(shared.pg.url, autocommit=True) as conn:
            conn.execute("CREATE DATABASE payments")
            # fsync off (throwaway data), but a commit is acknowledged only once its WAL is written.
            assert conn.execute("SHOW fsync").fetchone() == ("off",)
            assert conn.execute("SHOW synchronous_commit").fetchone() == ("on",)
        base = shared.pg.url.rsplit("/", 1)[0]
        with psycopg.connect(f"{base}/payments", autocommit=True) as conn:
            conn.execute("CREATE TABLE payment_orders (id text)")
            conn.execute("INSERT INTO payment_orders VALUES ('po_earlier_seed')")
        with redis.Redis.from_url(shared.valkey.url) as valkey:
            valkey.set("{payments}:earlier", "1")
        assert sorted(shared.leftovers()) == ["1 Valkey keys", "database payments"]
        with redis.Redis.from_url(shared.valkey.url) as valkey:
            valkey.delete("{payments}:earlier")

        # Kept services between seeds: Valkey is emptied but keeps what a running consumer and relay
        # created once (a stream's consumer groups, the relay's registry of streams).
        runner = _runner()
        with redis.Redis.from_url(shared.valkey.url, decode_responses=True) as valkey:
            valkey.xgroup_create("{payments}:events", "wallet-settlement", id="0", mkstream=True)
            valkey.xadd("{payments}:events", {"event_id": "e1"})
            valkey.xreadgroup("wallet-settlement", "c1", {"{payments}:events": ">"})  # pending, unacked
            valkey.sadd("{payments}:streams", "{payments}:events")
            valkey.zadd("{payments}:retry", {"e1": 1})
        left = runner.valkey_leftovers(shared.valkey.url)
        assert "Valkey stream {payments}:events: 1 entries" in left
        assert "Valkey stream {payments}:events group wallet-settlement: 1 pending" in left
        assert "Valkey key {payments}:retry (zset)" in left
        runner.reset_valkey(shared.valkey.url)
        assert runner.valkey_leftovers(shared.valkey.url) == []
        with redis.Redis.from_url(shared.valkey.url, decode_responses=True) as valkey:
            assert [g["name"] for g in valkey.xinfo_groups("{payments}:events")] == ["wallet-settlement"]
            assert valkey.smembers("{payments}:streams") == {"{payments}:events"}
            assert valkey.xlen("{payments}:events") == 0 and not valkey.exists("{payments}:retry")

        with redis.Redis.from_url(shared.valkey.url) as valkey:
            valkey.set("{payments}:earlier", "1")
        # Killed by a seed's last fault and not restarted yet: the reset brings it back first.
        assert shared.valkey.proc is not None
        shared.valkey.proc.kill()
        shared.valkey.proc.wait()
        shared.reset()
        assert shared.leftovers() == []
        with psycopg.connect(shared.pg.url, autocommit=True) as conn:
            names = {r[0] for r in conn.execute("SELECT datname FROM pg_database")}
        assert names == {"postgres", "template0", "template1"}
    finally:
        shared.stop()


def test_a_crash_looping_process_ends_the_seed_at_once_with_its_name_and_last_lines(tmp_path, monkeypatch):
    """The runner learns of a process the supervisor gave up on while the seed runs, not at its end."""
    import asyncio
    import threading

    from svckit.devstack import supervisor

    runner = _runner()
    monkeypatch.setenv("DEV_GRPC_INSECURE", "1")  # no certificates needed: nothing here speaks gRPC
    stack = supervisor.Stack(tmp_path, echo_logs=False)
    # A "service" that dies as it starts, every time: Python's own message is its last log line.
    stack.children = [supervisor.Child("flaky", "chaos_no_such_module", 1, "tcp")]
    stack.start_children()
    watched = stack.watched()
    for unit in watched:
        unit.backoff = supervisor.Backoff(first_delay=0.05, max_crashes=3)
    watch = threading.Thread(target=stack.supervise, args=(watched,), daemon=True)
    watch.start()
    finished = []

    async def seed_work() -> None:
        await asyncio.sleep(120)  # far longer than the crash loop takes
        finished.append(True)

    try:
        with pytest.raises(runner.CrashLooped) as raised:
            asyncio.run(runner.until_crash_loop(stack, seed_work()))
    finally:
        stack.stop_requested.set()
        watch.join()
    message = str(raised.value)
    assert message.startswith("flaky crash-looped (exited with code 1; 3 crashes)")
    assert "No module named chaos_no_such_module" in message
    assert finished == []  # the seed's work was cancelled, not waited for
