"""Paired comparison of two versions of the ledger server under the one-per-call load of bench_ledger.py.

    python benchmarks/ab_ledger.py --base-rev ac7763d          # this checkout vs that commit
    python benchmarks/ab_ledger.py --base-rev HEAD~2 --rounds 3 --seconds 8 --new-env LEDGER_COALESCE_WINDOW_SECONDS=0.0005
    python benchmarks/ab_ledger.py --base-rev main --batched   # also PostTransactions, 100 per call

This machine's speed drifts within minutes (other jobs share its two cores), so two whole
benchmark runs taken one after the other compare the moment as much as the code. Here both versions
run at once on one durable embedded PostgreSQL and one database (2 server processes each, the idle
pair costs nothing), and their scenarios alternate (base, new, new, base, ...), each round over 10 hot
accounts and over 10,000. The base version is exported from git (``git archive``) into a temporary
directory; its servers run from there, with the same interpreter and packages. Prints every scenario
(postings/s, p50/p99, CPU per posting of servers / PostgreSQL / clients) and the mean per version.
Both versions must share the database schema (same migrations), since they run on one database.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import benchmarks.bench_ledger as bench  # noqa: E402
from benchmarks._ledger_load import warm_up  # noqa: E402
from svckit.devstack.infra import EmbeddedPostgres, free_port, remove_tree  # noqa: E402
from svckit.testing import Infra  # noqa: E402


def export(rev: str, into: Path) -> Path:
    """The tree of ``rev`` as plain files (no worktree, nothing in the repository changes)."""
    archive = into / "base.tar"
    with archive.open("wb") as out:
        subprocess.run(["git", "archive", rev], cwd=ROOT, stdout=out, check=True)
    target = into / "base"
    with tarfile.open(archive) as tar:
        tar.extractall(target, filter="data")
    return target


def _env(pairs: list[str]) -> dict[str, str]:
    return dict(pair.split("=", 1) for pair in pairs)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--base-rev", default="HEAD~1", help="git revision of the base version")
    parser.add_argument("--rounds", type=int, default=2, help="alternations per account set")
    parser.add_argument("--seconds", type=float, default=6.0, help="load duration per scenario")
    parser.add_argument("--base-env", action="append", default=[], help="NAME=VALUE for the base servers")
    parser.add_argument("--new-env", action="append", default=[], help="NAME=VALUE for the new servers")
    parser.add_argument(
        "--batched", action="store_true", help="also alternate bench_ledger's batched scenario (100 per call)"
    )
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="ab-ledger-"))
    base_root = export(args.base_rev, tmp)
    pg = EmbeddedPostgres(tmp / "pg", port=free_port(), durable=True).start()
    infra = Infra(database_url=pg.url, redis_url="redis://127.0.0.1:1/0", _pg=pg, _tmp=tmp)
    bench.use_pki(infra)  # both revisions must speak mutual TLS (any revision after the mtls branch)
    versions = {"base": (base_root, _env(args.base_env)), "new": (ROOT, _env(args.new_env))}
    servers: dict[str, list[tuple[subprocess.Popen, str]]] = {}
    saved = dict(os.environ)
    try:
        print(
            f"ledger A/B: base {args.base_rev} vs this checkout; 2-core machine; {bench._load()}", flush=True
        )
        for i, (name, (root, env)) in enumerate(versions.items()):
            # start_servers runs ``python -m ledger_svc`` in bench.ROOT with this process's environment.
            bench.ROOT = root
            os.environ.clear()
            os.environ.update(saved, PYTHONPATH=str(root), **env)
            servers[name] = bench.start_servers(
                infra.database_url, f"{infra.prefix}_ledger", 2, pool_size=48, migrate=i == 0
            )
        os.environ.clear()
        os.environ.update(saved)
        postgres = psutil.Process(pg.pid)
        url = infra.database_url_for(f"{infra.prefix}_ledger")
        results: dict[tuple[str, int], list[dict]] = {}
        for accounts in (10, 10_000):
            warm_up(servers["base"][0][1], accounts)
            for r in range(args.rounds):
                for name in ("base", "new") if r % 2 == 0 else ("new", "base"):
                    group = servers[name]
                    procs = [psutil.Process(p.pid) for p, _ in group]
                    result = bench.scenario(
                        f"{name}, {accounts:,} accounts, round {r + 1}", [a for _, a in group], 3, 24,
                        accounts, 0, args.seconds, procs, postgres, 0, url,
                    )  # fmt: skip
                    results.setdefault((name, accounts), []).append(result)
                    if args.batched:  # bench_ledger's batched scenario: 2 clients x 4 calls of 100
                        result = bench.scenario(
                            f"{name} batched, {accounts:,} accounts, round {r + 1}", [a for _, a in group],
                            2, 4, accounts, 100, args.seconds, procs, postgres, 0, url,
                        )  # fmt: skip
                        results.setdefault((name + " batched", accounts), []).append(result)
        for (name, accounts), runs in sorted(results.items(), key=lambda kv: (kv[0][1], kv[0][0])):
            print(
                f"mean {name:<12} {accounts:>6,} accounts: {statistics.mean(r['rate'] for r in runs):7,.0f} postings/s,"
                f" CPU per posting server {statistics.mean(r['server_us'] for r in runs):4.0f} us,"
                f" PostgreSQL {statistics.mean(r['pg_us'] for r in runs):4.0f} us ({len(runs)} runs)",
                flush=True,
            )
    finally:
        os.environ.clear()
        os.environ.update(saved)
        bench.stop_servers([server for group in servers.values() for server in group])
        pg.stop()
        remove_tree(tmp)


if __name__ == "__main__":
    main()
