"""A payment service with pay-outs, wired to its own PSP simulator (through the stripe SDK), the session's
real ledger and wallet, and helpers that fund sellers through real pay-ins and deliver the PSP's
payout events as the gateway would."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc
import pytest
import pytest_asyncio

from payment_svc import bootstrap
from payment_svc.config import PaymentSettings
from payment_svc.payouts.service import Payouts
from payment_svc.service import PaymentService
from psp_sim.testing import DEFAULT_API_KEY, SimServer, run_simulator
from psp_sim.webhooks import sign
from svckit.gen.common.v1 import money_pb2
from svckit.gen.ledger.v1 import ledger_service_pb2 as lpb
from svckit.gen.ledger.v1 import ledger_service_pb2_grpc as lpb_grpc
from svckit.gen.payments.v1 import payment_service_pb2 as ppb
from svckit.gen.payments.v1 import payment_service_pb2_grpc as ppb_grpc
from svckit.gen.payments.v1 import payout_service_pb2 as pb
from svckit.gen.payments.v1 import payout_service_pb2_grpc as pb_grpc
from svckit.gen.wallet.v1 import wallet_service_pb2 as wpb
from svckit.gen.wallet.v1 import wallet_service_pb2_grpc as wpb_grpc
from svckit.runtime import ServiceHandle, start_service
from svckit.testing import Infra
from tests.conftest import bounded_teardown

PERIOD = "2026-11"
"""An ended month: the run pays what the sellers' wallets hold when it runs."""
GOOD_BANK = "000123456789"
CLOSED_BANK = "000111111113"  # the PSP fails payouts to it: account_closed


T = TypeVar("T")


async def eventually(
    probe: Callable[[], Awaitable[T]], done: Callable[[T], bool], what: str, within: float = 20.0
) -> T:
    """Poll ``probe`` until ``done`` holds of its answer (asynchronous work: settlement, a run)."""
    deadline = time.monotonic() + within
    while True:
        value = await probe()
        if done(value):
            return value
        assert time.monotonic() < deadline, f"{what}: still {value}"
        await asyncio.sleep(0.05)


def uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def key() -> tuple[tuple[str, str], ...]:
    return (("idempotency-key", uuid.uuid4().hex),)


@pytest.fixture(scope="session")
def payout_sim() -> Iterator[SimServer]:
    with run_simulator({"seed": 23}) as server:
        yield server


@dataclass
class PayoutStack:
    sim: SimServer
    handle: ServiceHandle
    payouts: pb_grpc.PayoutServiceStub  # as the operator
    payments: ppb_grpc.PaymentServiceStub  # as the gateway
    wallet: wpb_grpc.WalletServiceStub
    ledger: lpb_grpc.LedgerServiceStub
    service: PaymentService
    """A second service object on the same database, for janitor passes driven by the test."""

    @property
    def janitor(self) -> Any:
        assert self.service.payouts is not None
        return self.service.payouts.janitor

    @property
    def uses(self) -> Payouts:
        assert self.service.payouts is not None
        return self.service.payouts

    def connected_account(self, bank: str = GOOD_BANK, **extra: Any) -> str:
        client = self.sim.client(max_network_retries=0)
        acct = client.v1.accounts.create(
            params={
                "type": "custom",
                "country": "US",
                "external_account": {
                    "object": "bank_account",
                    "country": "US",
                    "currency": "usd",
                    "routing_number": "110000000",
                    "account_number": bank,
                },
                **extra,
            }
        )
        return str(acct.id)

    async def register(
        self, seller: str, *, bank: str = GOOD_BANK, minimum: int = 0, **fields: Any
    ) -> pb.Seller:
        acct = fields.pop("psp_account", None) or self.connected_account(bank)
        reply = await self.payouts.RegisterSeller(
            pb.RegisterSellerRequest(
                seller=pb.Seller(
                    seller_account=seller,
                    psp_account=acct,
                    payout_currency=fields.pop("currency", "USD"),
                    schedule=pb.PAYOUT_SCHEDULE_MONTHLY,
                    anchor_day=fields.pop("anchor_day", 1),
                    minimum_payouts=[money_pb2.Money(amount_minor=minimum, currency="USD")]
                    if minimum
                    else [],
                    **fields,
                )
            ),
            metadata=key(),
        )
        return reply.seller

    async def sell(
        self,
        seller: str,
        amount_minor: int,
        currency: str = "USD",
        payment_method: str = "pm_card_bypassPending",
    ) -> str:
        """A buyer pays ``amount_minor`` to ``seller`` (direct mode, funds available at the PSP at once);
        returns the order id once it is settled into the wallet and the ledger."""
        order_id = uid("ord")
        await self.payments.CreatePayment(
            ppb.CreatePaymentRequest(
                checkout_id=uid("co"),
                buyer=ppb.BuyerInfo(buyer_id=uid("buyer"), email="b@example.com", country="US"),
                payment_orders=[
                    ppb.PaymentOrderInput(
                        payment_order_id=order_id,
                        seller_account=seller,
                        amount_minor=amount_minor,
                        currency=currency,
                    )
                ],
                payment_method=payment_method,
            ),
            metadata=key(),
        )
        await self.settled(order_id)
        return order_id

    async def settled(self, order_id: str) -> ppb.PaymentOrder:
        async def probe() -> ppb.PaymentOrder:
            request = ppb.GetPaymentOrderRequest(payment_order_id=order_id)
            return (await self.payments.GetPaymentOrder(request)).payment_order

        return await eventually(
            probe, lambda o: o.wallet_updated and o.ledger_updated, f"order {order_id} settled"
        )

    async def refund(self, order_id: str, amount_minor: int) -> None:
        await self.payments.CreateRefund(
            ppb.CreateRefundRequest(
                payment_order_id=order_id, amount_minor=amount_minor, reason="requested_by_customer"
            ),
            metadata=key(),
        )

    async def start_run(
        self, period: str = PERIOD, sellers: list[str] | None = None, dry_run: bool = False
    ) -> pb.PayoutRun:
        reply = await self.payouts.StartPayoutRun(
            pb.StartPayoutRunRequest(period=period, dry_run=dry_run, seller_accounts=sellers or []),
            metadata=key(),
        )
        return reply.run

    async def finished(self, run_id: str) -> pb.PayoutRun:
        async def probe() -> pb.PayoutRun:
            return (await self.payouts.GetPayoutRun(pb.GetPayoutRunRequest(run_id=run_id))).run

        return await eventually(probe, lambda r: r.state == pb.PAYOUT_RUN_STATE_COMPLETED, f"run {run_id}")

    async def pay(self, sellers: list[str]) -> pb.PayoutRun:
        return await self.finished((await self.start_run(sellers=sellers)).run_id)

    async def pay_period(self, period: str, sellers: list[str]) -> pb.PayoutRun:
        return await self.finished((await self.start_run(period, sellers=sellers)).run_id)

    async def payout(self, payout_id: str) -> pb.GetPayoutResponse:
        return await self.payouts.GetPayout(pb.GetPayoutRequest(payout_id=payout_id))

    async def available(self, seller: str, currency: str = "USD") -> tuple[int, int]:
        w = (await self.wallet.GetWallet(wpb.GetWalletRequest(seller_id=seller, currency=currency))).wallet
        return w.available.amount_minor, w.reserved.amount_minor

    async def balance(self, account: str) -> int:
        try:
            return (await self.ledger.GetBalance(lpb.GetBalanceRequest(account=account))).balance_minor
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.NOT_FOUND:
                raise
            return 0

    def payout_events(self, account: str, psp_payout_id: str | None = None) -> list[dict[str, Any]]:
        """The PSP's payout events of a connected account (oldest first), as it would send them."""
        client = self.sim.client(max_network_retries=0)
        events = [
            e.to_dict()
            for e in client.v1.events.list(
                params={"limit": 100}, options={"stripe_account": account}
            ).auto_paging_iter()
        ]
        found = [
            e
            for e in events
            if e["type"] in ("payout.paid", "payout.failed", "payout.canceled")
            and (psp_payout_id is None or e["data"]["object"]["id"] == psp_payout_id)
        ]
        return sorted(found, key=lambda e: (e["created"], e["id"]))

    async def deliver(self, event: dict[str, Any]) -> ppb.HandlePspEventResponse:
        payload = json.dumps(event)
        return await self.payments.HandlePspEvent(
            ppb.HandlePspEventRequest(
                event_id=event["id"],
                event_type=event["type"],
                payload=payload.encode(),
                stripe_signature=sign(payload, self.sim.webhook_secret, int(time.time())),
            )
        )

    async def outcome(self, event_id: str) -> str:
        """The inbox's outcome of a recorded PSP pay-out fact, once the service's worker applied it."""
        found = await eventually(
            lambda: self.uses.inbox.outcome(event_id), lambda o: o is not None, f"fact {event_id} applied"
        )
        assert found is not None
        return found

    async def settle(self, event: dict[str, Any]) -> str:
        """Deliver a payout event as the gateway would and wait for the inbox to apply it: its outcome
        (APPLIED: the pay-out changed; NO_CHANGE: a duplicate, late or stale answer)."""
        assert (await self.deliver(event)).accepted
        return await self.outcome(event["id"])

    async def verify_ledger(self) -> list[Any]:
        reply = await self.ledger.VerifyLedger(lpb.VerifyLedgerRequest())
        return list(reply.findings)


@pytest_asyncio.fixture(scope="session")
async def stack(
    infra: Infra,
    payout_sim: SimServer,
    services: dict[str, ServiceHandle],
    channels: dict[str, grpc.aio.Channel],
) -> AsyncIterator[PayoutStack]:
    settings = infra.settings(
        PaymentSettings,
        db_suffix="payments_po",
        ledger_addr=services["ledger"].address,
        wallet_addr=services["wallet"].address,
        events_namespace=f"{infra.prefix}-payments-po",
        psp_base_url=payout_sim.base_url,
        psp_api_key=DEFAULT_API_KEY,
        psp_timeout_seconds=2.0,
        psp_max_network_retries=0,  # a dropped answer is the pay-out janitor's to retry (same key)
        janitor_interval_seconds=3600,  # tests run janitor passes themselves
        # The server's inbox worker applies the facts its own HandlePspEvent records (it is woken);
        # facts a test records itself wait for that test to apply them.
        payout_inbox_poll_seconds=3600,
        payout_inbox_linger_seconds=0.05,  # a test delivers one event at a time: no burst to wait for
        payout_retry_seconds=0,
        payout_check_seconds=0,
        risk_velocity_max_checkouts=10_000,
        risk_velocity_max_amount_minor=10**12,
        commission_rate_bps=1000,
        psp_webhook_secrets=[payout_sim.webhook_secret],
    )
    handle = await start_service(settings, bootstrap.MIGRATIONS, bootstrap.build)
    operator = infra.channel(handle.address, "operator")
    gateway = infra.channel(handle.address, "gateway")
    service = bootstrap.build_service(settings, handle.engine)
    yield PayoutStack(
        payout_sim,
        handle,
        pb_grpc.PayoutServiceStub(operator),
        ppb_grpc.PaymentServiceStub(gateway),
        wpb_grpc.WalletServiceStub(channels["wallet"]),
        lpb_grpc.LedgerServiceStub(channels["ledger"]),
        service,
    )
    await bounded_teardown(service.close(), "closing the test's payment service")
    await bounded_teardown(operator.close(), "closing the operator channel")
    await bounded_teardown(gateway.close(), "closing the gateway channel")
    await bounded_teardown(handle.stop(0.2), "stopping the test's payment server")
