"""Paired comparison of two versions of the wallet server under bench_wallet.py's credit loads.

    python benchmarks/ab_wallet.py --base-rev main          # this checkout vs that revision
    python benchmarks/ab_wallet.py --base-rev HEAD~2 --rounds 3 --seconds 8

As ``ab_ledger.py``: the machine's speed drifts within minutes, so both versions run at once on one
durable embedded PostgreSQL (each on its own database, seeded alike) and their scenarios alternate
(base, new, new, base, ...). Each version runs two servers, one with coalescing off (plain: one
transaction per credit) and one with it on; the scenarios are a hot wallet (plain and coalesced),
10,000 wallets (coalesced) and ApplyBatch of 100 credits over 10,000 wallets. The base version is
exported from git (``git archive``) into a temporary directory and runs from there with the same
interpreter and packages. Prints every scenario and the mean per version. Both versions must share
the wallet's schema (same migrations).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import bench_wallet as bench  # noqa: E402
from benchmarks.ab_ledger import export  # noqa: E402
from svckit.devstack.infra import remove_tree  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--base-rev", default="HEAD~1", help="git revision of the base version")
    parser.add_argument("--rounds", type=int, default=2, help="alternations per scenario")
    parser.add_argument("--seconds", type=float, default=6.0, help="measured seconds per scenario")
    parser.add_argument(
        "--warmup",
        type=float,
        default=6.0,
        help="unmeasured seconds before each scenario (client processes start slowly on a loaded machine)",
    )
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="ab-wallet-"))
    base_root = export(args.base_rev, tmp)
    infra, pg = bench.start_infra(tmp / "infra")
    procs = []
    try:
        print(f"wallet A/B: base {args.base_rev} vs this checkout; {bench.load()}", flush=True)
        servers: dict[tuple[str, bool], tuple[str, psutil.Process]] = {}
        for name, root in (("base", base_root), ("new", ROOT)):
            bench.ROOT = root  # start_service runs ``python -m wallet_svc`` there
            db = f"wallet_{name}"
            for coalesce in (False, True):
                proc, address = bench.start_service(infra, db, 10, coalesce)
                procs.append(proc)
                servers[(name, coalesce)] = (address, psutil.Process(proc.pid))
            bench.seed_wallets(infra.database_url_for(db), bench.SPREAD_WALLETS)
        scenarios = [
            ("plain: hot wallet", False, 1, 32, 0),
            ("coalesced: hot wallet", True, 1, 32, 0),
            (f"coalesced: {bench.SPREAD_WALLETS:,} wallets", True, bench.SPREAD_WALLETS, 32, 0),
            (f"batched x100: {bench.SPREAD_WALLETS:,} wallets", True, bench.SPREAD_WALLETS, 4, 100),
        ]
        results: dict[tuple[str, str], list[float]] = {}
        for title, coalesce, sellers, concurrency, batch in scenarios:
            for r in range(args.rounds):
                for name in ("base", "new") if r % 2 == 0 else ("new", "base"):
                    address, service = servers[(name, coalesce)]
                    row = bench.scenario(f"{name} {title} r{r + 1}", address, service, pg, sellers, 2,
                                         concurrency, args.seconds, args.warmup, batch)  # fmt: skip
                    if row["errors"]:
                        raise SystemExit(f"errors in {title}: {row['error_samples']}")
                    results.setdefault((title, name), []).append(row["rate"])
        for title, *_ in scenarios:
            base, new = (statistics.mean(results[(title, n)]) for n in ("base", "new"))
            change = f"{(new / base - 1) * 100:+.1f} %" if base else "base measured nothing"
            print(f"mean {title:<32} base {base:8.0f}  new {new:8.0f} credits/s  ({change})", flush=True)
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(10)
        infra.stop()
        remove_tree(tmp)


if __name__ == "__main__":
    main()
