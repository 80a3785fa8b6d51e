"""The fault campaign's runner, exercised on one short seed (the long campaign is `make chaos`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Seed 59 over 3 seconds: a decline, a 3-D Secure checkout the buyer completes, and a card payment to
# three sellers refunded twice concurrently (60 % each: at most one may pass), while the PSP answers
# 500 to charges and the payment service is killed with SIGKILL.
SEED = "59"


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
    assert any(f.startswith("killed payment pid") for f in result["faults"]), result["faults"]
    assert any(f.startswith("psp faults set (200)") for f in result["faults"]), result["faults"]
    assert result["seen"]["psp_intents"] == 3  # one per checkout, declined or charged
    orders = sum(count for name, count in result["seen"].items() if name.startswith("orders_"))
    assert orders == 6 and "orders_missing" not in result["seen"]
    assert result["kept"] is None  # a passing seed keeps nothing unless asked
