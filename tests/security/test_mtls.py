"""Mutual TLS between processes: no plaintext, no certificate from another CA, no caller without one."""

from __future__ import annotations

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from svckit import pki
from svckit.gen.events.v1 import events_admin_service_pb2 as epb
from svckit.gen.events.v1 import events_admin_service_pb2_grpc as epb_grpc
from svckit.grpc_errors import error_info
from svckit.tls import identity_files

SERVICES = ["payment", "ledger", "wallet", "recon"]


async def _health(channel: grpc.aio.Channel) -> int:
    reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)  # type: ignore[attr-defined]  # the stub declares no methods
    return reply.status


@pytest.mark.parametrize("name", SERVICES)
async def test_a_plaintext_client_cannot_call_the_service(services, name):
    # Deliberately plaintext: the servers must not speak it at all.
    async with grpc.aio.insecure_channel(services[name].address) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await _health(channel)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE


@pytest.mark.parametrize("name", SERVICES)
async def test_a_client_without_a_certificate_is_refused(infra, services, name):
    # TLS that trusts the server but presents no client certificate of its own.
    ca = (infra.pki_dir / pki.CA_FILE).read_bytes()
    credentials = grpc.ssl_channel_credentials(root_certificates=ca)
    async with grpc.aio.secure_channel(services[name].address, credentials) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await _health(channel)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE


@pytest.mark.parametrize("name", SERVICES)
async def test_a_client_certificate_from_another_ca_is_refused(infra, services, tmp_path, name):
    # A well-formed `payment` certificate, from a CA the deployment does not trust.
    pki.init(tmp_path, ("payment",))
    ours = pki.files(infra.pki_dir, "payment")
    theirs = pki.files(tmp_path, "payment")
    credentials = grpc.ssl_channel_credentials(
        root_certificates=ours.ca_file.read_bytes(),  # the client trusts the real server…
        private_key=theirs.key_file.read_bytes(),
        certificate_chain=theirs.cert_file.read_bytes(),  # …but is not trusted back
    )
    async with grpc.aio.secure_channel(services[name].address, credentials) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await _health(channel)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    # The same client with the deployment's certificate gets through (the refusal was the CA).
    async with infra.channel(services[name].address) as channel:
        assert await _health(channel) == health_pb2.HealthCheckResponse.SERVING


async def test_a_server_from_another_ca_is_not_trusted_by_clients(infra, services, tmp_path):
    # The other direction: our client refuses a server whose certificate our CA did not sign.
    pki.init(tmp_path, ("ledger",))
    impostor = pki.files(tmp_path, "ledger")
    server = grpc.aio.server()
    health_pb2_grpc.add_HealthServicer_to_server(health.aio.HealthServicer(), server)
    port = server.add_secure_port(
        "127.0.0.1:0",
        identity_files(impostor.ca_file, impostor.cert_file, impostor.key_file).server_credentials(),
    )
    await server.start()
    try:
        async with infra.channel(f"127.0.0.1:{port}") as channel:
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await _health(channel)
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        await server.stop(0)


async def test_the_operator_lists_services_by_reflection(infra, services):
    async with infra.channel(services["payment"].address, "operator") as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        replies = [
            r
            async for r in stub.ServerReflectionInfo(
                iter([reflection_pb2.ServerReflectionRequest(list_services="")])
            )
        ]
    listed = {s.name for s in replies[0].list_services_response.service}
    assert {"payments.v1.PaymentService", "events.v1.EventsAdminService", "grpc.health.v1.Health"} <= listed


async def test_the_operator_lists_dead_letters(operator_channels):
    reply = await epb_grpc.EventsAdminServiceStub(operator_channels["payment"]).ListDeadLetters(
        epb.ListDeadLettersRequest(page_size=10)
    )
    assert isinstance(reply, epb.ListDeadLettersResponse)


@pytest.mark.parametrize("identity", ["payment", "gateway", "recon", "wallet", "ledger"])
async def test_no_service_identity_may_replay_every_dead_letter_and_only_the_console_reads_them(
    infra, services, identity
):
    """The gateway reads and works single dead letters for the console (session, CSRF, audit); a
    replay of them all stays with people on call, and no other service touches the channel."""
    async with infra.channel(services["payment"].address, identity) as channel:
        stub = epb_grpc.EventsAdminServiceStub(channel)
        refused: list = [(stub.ReplayAllDeadLetters, epb.ReplayAllDeadLettersRequest())]
        if identity == "gateway":
            listed = await stub.ListDeadLetters(epb.ListDeadLettersRequest(page_size=1))
            assert isinstance(listed, epb.ListDeadLettersResponse)
        else:
            refused.append((stub.ListDeadLetters, epb.ListDeadLettersRequest()))
        for call, request in refused:
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await call(request, metadata=[("idempotency-key", f"admin-{identity}")])
            assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
            info = error_info(err.value)
            assert info is not None and info.reason == "CALLER_NOT_ALLOWED"
            assert info.metadata["caller"] == identity
