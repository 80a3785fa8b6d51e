"""The fault campaign's runner, exercised on one short seed (the long campaign is `make chaos`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Seed 429 over 3 seconds: three card payments (one refunded in full, one refunded twice concurrently,
# 60 % each: at most one may pass) while the PSP drops its answer to a charge after making it, and
# the wallet and recon are killed with SIGKILL; then the sellers' pay-out run (paid) and the
# reconciliation of the PSP's days.
SEED = "429"


@pytest.mark.slow
def test_one_short_seed_runs_its_faults_and_keeps_every_invariant(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    report = tmp_path / "report.json"
    run = subprocess.run(
        [sys.executable, "benchmarks/chaos.py", "--seed", SEED, "--duration-per-seed", "3",
         "--keep-dir", str(tmp_path / "kept"), "--report", str(report)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    (result,) = json.loads(report.read_text())
    assert result["seed"] == int(SEED) and result["broken"] == []
    # The schedule's faults really happened, and the checks looked at real payments.
    faults = result["faults"]
    assert any(f.startswith("killed wallet pid") for f in faults), faults
    assert any(f.startswith("killed recon pid") for f in faults), faults
    assert any(f.startswith("psp faults set (200)") for f in faults), faults
    # Two runs of the period started at once, both completed (each seller paid once: the invariants).
    assert any(f.startswith("payout run") and f.count("completed") == 2 for f in faults), faults
    seen = result["seen"]
    assert seen["psp_intents"] == 3  # one per checkout
    orders = sum(count for name, count in seen.items() if name.startswith("orders_"))
    assert orders == 4 and "orders_missing" not in seen
    # Pay-outs, reconciliation and the outbox were checked, not skipped.
    assert seen["payouts_checked_sellers"] >= 1 and seen["recon_runs"] >= 1 and seen["outbox_rows"] > 0
    assert result["kept"] is None  # a passing seed keeps nothing unless asked
