"""``python -m payment_svc payouts run`` against the running payment service, as the operator."""

from __future__ import annotations

import asyncio

from typer.testing import CliRunner

from payment_svc.__main__ import app
from svckit.gen.payments.v1 import payout_service_pb2 as pb
from svckit.testing import Infra
from tests.payouts.conftest import PERIOD, PayoutStack, uid


async def _cli(infra: Infra, stack: PayoutStack, *args: str) -> tuple[int, str, str]:
    """The command in this process (a thread with its own event loop, as ``python -m`` would have),
    against the running service, with the operator's certificate in its environment."""
    env = {**infra.tls_env("operator"), "COLUMNS": "200"}
    argv = ["payouts", *args, "--address", stack.handle.address]
    result = await asyncio.to_thread(CliRunner().invoke, app, argv, env=env)
    return result.exit_code, result.stdout, result.stderr


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
