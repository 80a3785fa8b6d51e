"""Every service answers the standard health check and lists its API through server reflection."""

from __future__ import annotations

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

EXPECTED = {
    "payment": "payments.v1.PaymentService",
    "ledger": "ledger.v1.LedgerService",
    "wallet": "wallet.v1.WalletService",
    "recon": "recon.v1.ReconService",
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
async def test_health_reports_serving_for_server_and_service(channels, name):
    stub = health_pb2_grpc.HealthStub(channels[name])
    overall = await stub.Check(health_pb2.HealthCheckRequest(service=""))
    own = await stub.Check(health_pb2.HealthCheckRequest(service=EXPECTED[name]))
    assert overall.status == health_pb2.HealthCheckResponse.SERVING
    assert own.status == health_pb2.HealthCheckResponse.SERVING


@pytest.mark.parametrize("name", sorted(EXPECTED))
async def test_reflection_lists_the_service(channels, name):
    stub = reflection_pb2_grpc.ServerReflectionStub(channels[name])

    async def one_request():
        yield reflection_pb2.ServerReflectionRequest(list_services="")

    listed = set()
    async for response in stub.ServerReflectionInfo(one_request()):
        listed |= {s.name for s in response.list_services_response.service}
    assert EXPECTED[name] in listed
    assert "grpc.health.v1.Health" in listed


async def test_unknown_service_is_not_found_in_health(channels):
    stub = health_pb2_grpc.HealthStub(channels["ledger"])
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.Check(health_pb2.HealthCheckRequest(service="nope.v1.Nothing"))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


async def test_container_health_probe_answers_for_live_and_dead_targets(infra, services, monkeypatch):
    import asyncio

    from svckit.devstack.infra import free_port
    from svckit.healthcheck import check

    # As in a container: the probe calls with the identity the environment names.
    for name, value in infra.tls_env("wallet").items():
        monkeypatch.setenv(name, value)
    assert await asyncio.to_thread(check, "grpc", services["wallet"].address)
    assert not await asyncio.to_thread(check, "grpc", f"127.0.0.1:{free_port()}", 0.5)
    assert not await asyncio.to_thread(check, "http", f"http://127.0.0.1:{free_port()}/readyz", 0.5)
