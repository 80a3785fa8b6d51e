"""gRPC channels and stubs to the four services, with request metadata propagated on every call."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import grpc

from gateway.config import GatewaySettings
from svckit.context import (
    IDEMPOTENCY_KEY_METADATA,
    REQUEST_ID_METADATA,
    idempotency_key_var,
    is_metadata_value,
    request_id_var,
)
from svckit.errors import InvalidArgument
from svckit.gen.ledger.v1 import ledger_service_pb2_grpc
from svckit.gen.payments.v1 import payment_service_pb2_grpc, payout_service_pb2_grpc
from svckit.gen.recon.v1 import recon_service_pb2_grpc
from svckit.gen.wallet.v1 import wallet_service_pb2_grpc
from svckit.tls import security_for


class _MetadataInterceptor(grpc.aio.UnaryUnaryClientInterceptor):
    """Adds ``x-request-id`` (always) and ``idempotency-key`` (when the REST call had one)."""

    async def intercept_unary_unary(self, continuation, client_call_details, request):
        extra: list[tuple[str, str]] = []
        if rid := request_id_var.get():
            extra.append((REQUEST_ID_METADATA, rid))
        if key := idempotency_key_var.get():
            extra.append((IDEMPOTENCY_KEY_METADATA, key))
        for name, value in extra:
            if not is_metadata_value(value):  # the middleware refuses these first; never hand them to gRPC
                raise InvalidArgument("INVALID_HEADER", f"{name} must be printable ASCII", field=name)
        if extra:
            metadata: Sequence[tuple[str, str]] = tuple(client_call_details.metadata or ()) + tuple(extra)
            client_call_details = client_call_details._replace(metadata=metadata)
        return await continuation(client_call_details, request)


@dataclass
class Upstreams:
    channels: dict[str, grpc.aio.Channel]
    payment: payment_service_pb2_grpc.PaymentServiceStub
    payouts: payout_service_pb2_grpc.PayoutServiceStub  # served by the payment service
    ledger: ledger_service_pb2_grpc.LedgerServiceStub
    wallet: wallet_service_pb2_grpc.WalletServiceStub
    recon: recon_service_pb2_grpc.ReconServiceStub

    @classmethod
    def connect(cls, settings: GatewaySettings) -> Upstreams:
        addrs = {
            "payment": settings.payment_addr,
            "ledger": settings.ledger_addr,
            "wallet": settings.wallet_addr,
            "recon": settings.recon_addr,
        }
        security = security_for(settings)  # the gateway calls every service as the `gateway` identity
        channels = {
            name: security.aio_channel(
                addr,  # one address, or a list of replicas called round-robin (svckit.tls)
                interceptors=[_MetadataInterceptor()],
            )
            for name, addr in addrs.items()
        }
        return cls(
            channels=channels,
            payment=payment_service_pb2_grpc.PaymentServiceStub(channels["payment"]),
            payouts=payout_service_pb2_grpc.PayoutServiceStub(channels["payment"]),
            ledger=ledger_service_pb2_grpc.LedgerServiceStub(channels["ledger"]),
            wallet=wallet_service_pb2_grpc.WalletServiceStub(channels["wallet"]),
            recon=recon_service_pb2_grpc.ReconServiceStub(channels["recon"]),
        )

    async def close(self) -> None:
        for channel in self.channels.values():
            await channel.close()
