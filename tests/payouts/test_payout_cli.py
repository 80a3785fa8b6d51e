"""``python -m payment_svc payouts run`` against the running payment service, as the operator."""

from __future__ import annotations

import asyncio
import os
import sys

from svckit.gen.payments.v1 import payout_service_pb2 as pb
from svckit.testing import Infra
from tests.payouts.conftest import PERIOD, PayoutStack, uid


async def _cli(infra: Infra, stack: PayoutStack, *args: str) -> tuple[int, str, str]:
    env = {**os.environ, **infra.tls_env("operator"), "COLUMNS": "200"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "payment_svc",
        "payouts",
        *args,
        "--address",
        stack.handle.address,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_the_cli_runs_a_period_and_reports_each_seller(infra: Infra, stack: PayoutStack):
    paid, paused = uid("s-cli"), uid("s-cli-paused")
    await stack.register(paid)
    await stack.register(paused)
    await stack.sell(paid, 2_500)  # owed 22.50
    await stack.payouts.PauseSeller(
        pb.PauseSellerRequest(seller_account=paused, reason="hold"), metadata=(("idempotency-key", uid("k")),)
    )

    code, out, err = await _cli(
        infra, stack, "run", "--period", PERIOD, "--seller", paid, "--seller", paused, "--poll-seconds", "0.1"
    )
    assert code == 0, err
    (payout,) = (await stack.payouts.ListPayouts(pb.ListPayoutsRequest(seller_account=paid))).payouts
    assert payout.amount.amount_minor == 2_250
    assert payout.payout_id in out and "22.50 USD" in out
    assert "1 pay-outs created, 1 sellers skipped (paused: 1)" in out

    code, out, err = await _cli(infra, stack, "run", "--period", "2099-01", "--dry-run")
    assert code == 1 and "PERIOD_NOT_ENDED" in err
