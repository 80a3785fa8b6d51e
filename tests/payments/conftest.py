"""A payment service wired to the real PSP simulator (through the stripe SDK) and real PostgreSQL."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import pytest_asyncio

from payment_svc import bootstrap
from payment_svc.config import PaymentSettings
from payment_svc.service import PaymentService
from psp_sim.testing import DEFAULT_API_KEY, SimServer, run_simulator
from psp_sim.webhooks import sign
from svckit.gen.payments.v1 import payment_service_pb2 as pb
from svckit.gen.payments.v1 import payment_service_pb2_grpc as pb_grpc
from svckit.runtime import ServiceHandle, start_service
from svckit.testing import Infra
from tests.conftest import bounded_teardown


@pytest.fixture(scope="session")
def sim() -> Iterator[SimServer]:
    with run_simulator({"seed": 11}) as server:
        yield server


@dataclass
class PayStack:
    sim: SimServer
    handle: ServiceHandle
    stub: pb_grpc.PaymentServiceStub
    service: PaymentService
    """A second service object on the same database, for driving janitor passes from tests."""

    def psp_objects(self, kind: str) -> list[dict[str, Any]]:
        state = self.sim.admin.state(kind)
        objects = state["objects"][kind]
        return list(objects.values()) if isinstance(objects, dict) else list(objects)

    def events(self) -> list[dict[str, Any]]:
        """Every event the PSP has emitted, oldest first, as the JSON it would have sent."""
        client = self.sim.client(max_network_retries=0)
        events = [e.to_dict() for e in client.v1.events.list(params={"limit": 100}).auto_paging_iter()]
        # The PSP lists the newest first, in the order it emitted them; several share a second and their
        # ids are random, so sorting by (created, id) misordered them.
        return events[::-1]

    async def deliver(self, events: list[dict[str, Any]]) -> list[pb.HandlePspEventResponse]:
        """Hand each event to HandlePspEvent as the gateway would: signed with the PSP's secret."""
        replies = []
        for event in events:
            payload = json.dumps(event)
            replies.append(
                await self.stub.HandlePspEvent(
                    pb.HandlePspEventRequest(
                        event_id=event["id"],
                        event_type=event["type"],
                        payload=payload.encode(),
                        stripe_signature=sign(payload, self.sim.webhook_secret, int(time.time())),
                    )
                )
            )
        return replies

    async def deliver_all(self) -> None:
        await self.deliver(self.events())

    def pay_hosted(self, url: str, card: str = "4242424242424242") -> httpx.Response:
        return httpx.post(
            url,
            data={"cardnumber": card, "exp": "12/34", "cvc": "123", "action": "pay"},
            follow_redirects=False,
            timeout=10,
        )


@pytest_asyncio.fixture(scope="session")
async def pay(infra: Infra, sim: SimServer, services: dict[str, ServiceHandle]) -> AsyncIterator[PayStack]:
    settings = infra.settings(
        PaymentSettings,
        db_suffix="payments_it",
        ledger_addr=services["ledger"].address,
        wallet_addr=services["wallet"].address,
        events_namespace=f"{infra.prefix}-payments-it",
        psp_base_url=sim.base_url,
        psp_api_key=DEFAULT_API_KEY,
        psp_timeout_seconds=2.0,
        psp_max_network_retries=2,
        janitor_interval_seconds=3600,  # tests run janitor passes themselves
        janitor_first_check_seconds=0,
        risk_blocked_buyers=frozenset({"blocked-buyer"}),
        risk_review_above_minor=900_000,
        risk_decline_above_minor=5_000_000,
        risk_velocity_max_checkouts=10_000,
        risk_velocity_max_amount_minor=10**12,
        commission_rate_bps=1000,
        commission_overrides_bps={"seller-low-fee": 250},
        psp_webhook_secrets=[sim.webhook_secret],
    )
    handle = await start_service(settings, bootstrap.MIGRATIONS, bootstrap.build)
    channel = infra.channel(handle.address, "gateway")
    service = bootstrap.build_service(settings, handle.engine)
    yield PayStack(sim, handle, pb_grpc.PaymentServiceStub(channel), service)
    await bounded_teardown(service.close(), "closing the test's payment service")
    await bounded_teardown(channel.close(), "closing the channel")
    await bounded_teardown(handle.stop(0.2), "stopping the test's payment server")


@pytest.fixture(autouse=True)
def _clean_psp(request: pytest.FixtureRequest) -> None:
    if "pay" in request.fixturenames:
        sim: SimServer = request.getfixturevalue("sim")
        sim.admin.reset()
