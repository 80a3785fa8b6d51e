"""A payment service killed mid-flow and restarted loses no money and doubles none."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest

from psp_sim.testing import DEFAULT_API_KEY, run_simulator
from svckit.devstack.infra import free_port
from svckit.gen.payments.v1 import payment_service_pb2 as pb
from svckit.gen.payments.v1 import payment_service_pb2_grpc as pb_grpc
from svckit.gen.wallet.v1 import wallet_service_pb2 as wpb
from svckit.gen.wallet.v1 import wallet_service_pb2_grpc as wpb_grpc
from svckit.healthcheck import check
from svckit.tls import GrpcSecurity

ROOT = Path(__file__).resolve().parents[2]


def _start(env: dict[str, str], port: int, probe: GrpcSecurity) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-m", "payment_svc"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(300):
        if check("grpc", f"127.0.0.1:{port}", 0.5, security=probe):
            return proc
        assert proc.poll() is None, "payment service exited during start-up"
        time.sleep(0.1)
    proc.kill()
    pytest.fail("payment service did not become healthy")


def _succeeded(sim) -> list[dict]:
    return [c for c in sim.admin.state("charge")["objects"]["charge"] if c.get("status") == "succeeded"]


async def _until(probe: Callable[[], list], failure: str) -> list:
    """What ``probe`` answers once it is not empty, within 30 s."""
    deadline = asyncio.get_running_loop().time() + 30
    while not (found := probe()):
        assert asyncio.get_running_loop().time() < deadline, failure
        await asyncio.sleep(0.05)
    return found


@pytest.mark.slow
async def test_killed_while_the_psp_charges_then_retried_charges_once(infra, services, channels):
    port = free_port()
    with run_simulator({"seed": 23}) as sim:
        env = {
            **os.environ,
            "DATABASE_URL": infra.database_url,
            "REDIS_URL": infra.redis_url,
            "PAYMENT_DATABASE_NAME": f"{infra.prefix}_payments_crash",
            "PAYMENT_GRPC_PORT": str(port),
            "PAYMENT_PSP_BASE_URL": sim.base_url,
            "PAYMENT_PSP_API_KEY": DEFAULT_API_KEY,
            "PAYMENT_LEDGER_ADDR": services["ledger"].address,
            "PAYMENT_WALLET_ADDR": services["wallet"].address,
            "PAYMENT_EVENTS_NAMESPACE": f"{infra.prefix}-crash",
            "PAYMENT_JANITOR_INTERVAL_SECONDS": "3600",
            "PAYMENT_PSP_WEBHOOK_SECRETS": sim.webhook_secret,
            **infra.tls_env("payment"),
            "LOG_FORMAT": "json",
        }
        infra._databases.append(env["PAYMENT_DATABASE_NAME"])
        # The PSP takes 3 s on the charge: long enough to kill the service while the call is in flight.
        sim.admin.set_faults(
            [
                {
                    "kind": "latency",
                    "latency_ms": 3000,
                    "path_prefix": "/v1/payment_intents",
                    "method": "POST",
                    "count": 1,
                }
            ]
        )
        seller = f"crash-{uuid.uuid4().hex[:6]}"
        request = pb.CreatePaymentRequest(
            checkout_id=f"co_{seller}",
            buyer=pb.BuyerInfo(buyer_id=f"buyer-crash-{seller}"),
            payment_orders=[
                pb.PaymentOrderInput(
                    payment_order_id=f"po_{seller}", seller_account=seller, amount_minor=5000, currency="USD"
                )
            ],
            payment_method="pm_card_visa",
        )
        key = [("idempotency-key", f"crash-{seller}")]
        proc = _start(env, port, infra.security("operator"))
        try:
            async with infra.channel(f"127.0.0.1:{port}", "gateway") as channel:
                call = asyncio.ensure_future(
                    pb_grpc.PaymentServiceStub(channel).CreatePayment(request, metadata=key)
                )
                # Killed once the PSP holds the charge request (its latency is recorded as it starts),
                # not after a fixed time: a loaded machine may not have sent it yet.
                await _until(lambda: sim.admin.injected_faults("latency"), "the PSP never got the charge")
                proc.send_signal(signal.SIGKILL)
                proc.wait(10)
                with pytest.raises(grpc.aio.AioRpcError):
                    await call
            # The PSP finishes the charge nobody is waiting for.
            charged = await _until(lambda: _succeeded(sim), "the PSP did not finish the charge")
            assert len(charged) == 1

            proc = _start(env, port, infra.security("operator"))
            async with infra.channel(f"127.0.0.1:{port}", "gateway") as channel:
                stub = pb_grpc.PaymentServiceStub(channel)
                reply = await stub.CreatePayment(request, metadata=key)  # the client's retry, same key
                assert reply.payment_event.payment_orders[0].state == pb.PAYMENT_ORDER_STATE_SUCCESS
                deadline = asyncio.get_running_loop().time() + 30
                while True:
                    order = (
                        await stub.GetPaymentOrder(pb.GetPaymentOrderRequest(payment_order_id=f"po_{seller}"))
                    ).payment_order
                    if order.wallet_updated and order.ledger_updated:
                        break
                    assert asyncio.get_running_loop().time() < deadline, (
                        "settlement did not finish after restart"
                    )
                    await asyncio.sleep(0.2)
        finally:
            proc.kill()
            proc.wait(10)
        intents = sim.admin.state("payment_intent")["objects"]["payment_intent"]
        assert len(intents) == 1 and len(_succeeded(sim)) == 1
        wallet = wpb_grpc.WalletServiceStub(channels["wallet"])
        balance = await wallet.GetWallet(wpb.GetWalletRequest(seller_id=seller, currency="USD"))
        assert balance.wallet.available.amount_minor == 4500  # credited once, net of 10 % commission
