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
