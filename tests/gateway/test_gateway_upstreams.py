"""Upstream addresses: one service may run as several processes, called round-robin."""

from __future__ import annotations

import grpc
import pytest
from pydantic import ValidationError

from gateway.clients import Upstreams
from gateway.config import GatewaySettings
from svckit.devstack.supervisor import plan_children
from svckit.tls import channel_target


def test_channel_targets_for_one_address_and_for_replicas():
    assert channel_target("payment:50051") == "payment:50051"
    assert channel_target("127.0.0.1:1, 127.0.0.1:2") == "ipv4:127.0.0.1:1,127.0.0.1:2"
    with pytest.raises(ValueError, match="IPv4 literals"):
        channel_target("payment-a:1,payment-b:2")
    with pytest.raises(ValueError, match="no port"):
        channel_target("127.0.0.1:1,127.0.0.1:http")


def test_a_bad_replica_list_is_refused_at_start_up_naming_the_setting():
    with pytest.raises(ValidationError, match="payment_addr"):
        GatewaySettings(payment_addr="a:1,b:2", _env_file=None)


async def test_calls_are_spread_over_every_replica(infra):
    counts = [0, 0]
    servers = []

    def counting(i):
        def handle(request, context):
            counts[i] += 1
            return b""

        return grpc.method_handlers_generic_handler(
            "payments.v1.PaymentService", {"GetPaymentOrder": grpc.unary_unary_rpc_method_handler(handle)}
        )

    ports = []
    for i in range(2):
        server = grpc.aio.server()
        server.add_generic_rpc_handlers((counting(i),))
        ports.append(server.add_secure_port("127.0.0.1:0", infra.security("payment").server_credentials()))
        await server.start()
        servers.append(server)
    try:
        settings = infra.settings(
            GatewaySettings, payment_addr=",".join(f"127.0.0.1:{p}" for p in ports), environment="development"
        )
        upstreams = Upstreams.connect(settings)
        call = upstreams.channels["payment"].unary_unary("/payments.v1.PaymentService/GetPaymentOrder")
        for _ in range(20):
            await call(b"", timeout=5)
        for channel in upstreams.channels.values():
            await channel.close()
    finally:
        for server in servers:
            await server.stop(0)
    assert sum(counts) == 20
    assert min(counts) >= 5, counts  # both replicas served, not one taking everything


def test_the_dev_stack_can_run_several_payment_processes(monkeypatch):
    monkeypatch.setenv("DEV_PAYMENT_REPLICAS", "2")
    children = plan_children()
    payments = [c for c in children if c.module == "payment_svc"]
    assert [c.name for c in payments] == ["payment", "payment-2"]
    assert len({c.port for c in payments}) == 2
    gateway = next(c for c in children if c.name == "gateway")
    assert gateway.env["GATEWAY_PAYMENT_ADDR"] == ",".join(c.address for c in payments)
    assert all("PAYMENT_METRICS_PORT" not in c.env for c in payments)  # off unless asked for
    # With metrics on, each replica serves them on its own port instead of all fighting for one.
    monkeypatch.setenv("PAYMENT_METRICS_PORT", "9101")
    payments = [c for c in plan_children() if c.module == "payment_svc"]
    assert [c.env["PAYMENT_METRICS_PORT"] for c in payments] == ["9101", "9102"]
    monkeypatch.setenv("DEV_PAYMENT_REPLICAS", "0")
    with pytest.raises(SystemExit, match="DEV_PAYMENT_REPLICAS"):
        plan_children()


def test_the_dev_stack_runs_every_service_as_several_processes_and_callers_list_them_all(monkeypatch):
    monkeypatch.setenv("DEV_REPLICAS", "2")
    monkeypatch.setenv("DEV_PAYMENT_REPLICAS", "3")  # the payment service's own count wins
    children = plan_children()
    by_module: dict[str, list] = {}
    for c in children:
        by_module.setdefault(c.module, []).append(c)
    assert [
        len(by_module[m]) for m in ("payment_svc", "ledger_svc", "wallet_svc", "recon_svc", "gateway")
    ] == [
        3,
        2,
        2,
        2,
        2,
    ]
    assert len(by_module["psp_sim"]) == 1
    assert len({c.port for c in children}) == len(children)  # each process on a port of its own

    def listed(module: str) -> str:
        return ",".join(c.address for c in by_module[module])

    for c in by_module["payment_svc"]:
        assert c.env["PAYMENT_LEDGER_ADDR"] == listed("ledger_svc")
        assert c.env["PAYMENT_WALLET_ADDR"] == listed("wallet_svc")
    for c in by_module["recon_svc"]:
        assert c.env["RECON_PAYMENT_ADDR"] == listed("payment_svc")
        assert c.env["RECON_LEDGER_ADDR"] == listed("ledger_svc")
    for c in by_module["gateway"]:
        assert c.env["GATEWAY_RECON_ADDR"] == listed("recon_svc")
        assert c.env["GATEWAY_HTTP_PORT"] == str(c.port)
    # Every list is a valid channel target for the callers (svckit.tls: round-robin over the replicas).
    assert channel_target(listed("ledger_svc")).startswith("ipv4:127.0.0.1:")
