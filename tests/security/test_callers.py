"""Who may call what: the access tables refuse, before anything runs, every caller they do not name."""

from __future__ import annotations

import re
from pathlib import Path

import grpc
import pytest

from ledger_svc.access import ACCESS as LEDGER_ACCESS
from payment_svc.access import ACCESS as PAYMENT_ACCESS
from recon_svc.access import ACCESS as RECON_ACCESS
from svckit.access import method_names
from svckit.gen.events.v1 import events_admin_service_pb2
from svckit.gen.ledger.v1 import ledger_service_pb2 as lpb
from svckit.gen.ledger.v1 import ledger_service_pb2_grpc as lpb_grpc
from svckit.gen.payments.v1 import payment_service_pb2, payout_service_pb2
from svckit.gen.recon.v1 import recon_service_pb2
from svckit.gen.wallet.v1 import wallet_service_pb2 as wpb
from svckit.gen.wallet.v1 import wallet_service_pb2_grpc as wpb_grpc
from svckit.grpc_errors import error_info
from svckit.pki import IDENTITIES
from tests.ledger.ledger_helpers import transfer, uid
from tests.wallet.wallet_helpers import md, money, new_key, new_seller, ref
from wallet_svc.access import ACCESS as WALLET_ACCESS

ROOT = Path(__file__).resolve().parents[2]
TABLES = {"payment": PAYMENT_ACCESS, "ledger": LEDGER_ACCESS, "wallet": WALLET_ACCESS, "recon": RECON_ACCESS}
SERVED = {
    "payment": [
        payment_service_pb2.DESCRIPTOR.services_by_name["PaymentService"],
        payout_service_pb2.DESCRIPTOR.services_by_name["PayoutService"],
        events_admin_service_pb2.DESCRIPTOR.services_by_name["EventsAdminService"],
    ],
    "ledger": [lpb.DESCRIPTOR.services_by_name["LedgerService"]],
    "wallet": [wpb.DESCRIPTOR.services_by_name["WalletService"]],
    "recon": [recon_service_pb2.DESCRIPTOR.services_by_name["ReconService"]],
}
MONEY_MOVING = {
    "/wallet.v1.WalletService/" + m
    for m in ("Credit", "Debit", "Reserve", "Release", "CaptureReservation", "ApplyBatch")
} | {"/ledger.v1.LedgerService/" + m for m in ("PostTransaction", "PostTransactions", "ReverseTransaction")}


def _refused(err: grpc.aio.AioRpcError, caller: str, method: str) -> None:
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED
    info = error_info(err)
    assert info is not None and info.reason == "CALLER_NOT_ALLOWED"
    assert (info.metadata["caller"], info.metadata["method"]) == (caller, method)


async def test_the_gateway_cannot_credit_a_wallet_and_the_wallet_is_unchanged(infra, services, channels):
    seller = new_seller()
    own = wpb_grpc.WalletServiceStub(channels["wallet"])  # as `payment`, which may
    await own.Credit(
        wpb.CreditRequest(seller_id=seller, amount=money(500), reference=ref()), metadata=md(new_key())
    )
    async with infra.channel(services["wallet"].address, "gateway") as channel:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await wpb_grpc.WalletServiceStub(channel).Credit(
                wpb.CreditRequest(seller_id=seller, amount=money(1_000_000), reference=ref()),
                metadata=md(new_key()),
            )
    _refused(err.value, "gateway", "/wallet.v1.WalletService/Credit")
    wallet = (await own.GetWallet(wpb.GetWalletRequest(seller_id=seller, currency="USD"))).wallet
    assert wallet.available.amount_minor == 500
    movements = await own.ListMovements(wpb.ListMovementsRequest(seller_id=seller, currency="USD"))
    assert len(movements.movements) == 1


async def test_the_gateway_cannot_post_to_the_ledger_and_the_ledger_is_unchanged(infra, services, channels):
    bank, seller = f"asset:bank:gw{uid()}", f"liability:seller_payable:gw{uid()}"
    own = lpb_grpc.LedgerServiceStub(channels["ledger"])  # as `payment`, which may
    await own.PostTransaction(transfer(bank, seller, 700), metadata=md(new_key()))
    async with infra.channel(services["ledger"].address, "gateway") as channel:
        stub = lpb_grpc.LedgerServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.PostTransaction(transfer(bank, seller, 1_000_000), metadata=md(new_key()))
        _refused(err.value, "gateway", "/ledger.v1.LedgerService/PostTransaction")
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.PostTransactions(
                lpb.PostTransactionsRequest(
                    items=[
                        lpb.PostTransactionsItem(
                            idempotency_key=new_key(), transaction=transfer(bank, seller, 9)
                        )
                    ]
                ),
                metadata=md(new_key()),
            )
        _refused(err.value, "gateway", "/ledger.v1.LedgerService/PostTransactions")
        # What the gateway may do, it still can: read the books.
        balance = await stub.GetBalance(lpb.GetBalanceRequest(account=seller))
    assert balance.balance_minor == 700
    assert (await own.GetBalance(lpb.GetBalanceRequest(account=bank))).balance_minor == 700


async def test_the_operator_cannot_move_money(infra, services):
    async with infra.channel(services["wallet"].address, "operator") as channel:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await wpb_grpc.WalletServiceStub(channel).Credit(
                wpb.CreditRequest(seller_id=new_seller(), amount=money(1), reference=ref()),
                metadata=md(new_key()),
            )
    _refused(err.value, "operator", "/wallet.v1.WalletService/Credit")


@pytest.mark.parametrize("name", sorted(TABLES))
def test_every_rpc_a_service_serves_has_a_rule(name):
    served = {m for service in SERVED[name] for m in method_names(service)}
    assert set(TABLES[name]) == served  # a new RPC without a rule would be refused to everyone


def test_the_policy_as_decided():
    everything = {m: ids for table in TABLES.values() for m, ids in table.items()}
    for method, allowed in everything.items():
        assert allowed <= set(IDENTITIES), method
        if method in (
            "/ledger.v1.LedgerService/PostTransaction",
            "/ledger.v1.LedgerService/PostTransactions",
        ):
            # recon books the PSP's settlement of captured money (a row, or a chunk of rows per call); never
            # the gateway or the operator.
            assert allowed == {"payment", "recon"}, method
        elif method in MONEY_MOVING:
            assert allowed == {"payment"}, method  # never the gateway, the operator or recon
        if method.startswith("/events.v1."):
            # People on call; the gateway only for its operator console, one dead letter at a time.
            expected = {"operator"} if method.endswith("/ReplayAllDeadLetters") else {"gateway", "operator"}
            assert allowed == expected, method
    assert everything["/payments.v1.PaymentService/HandlePspEvent"] == {"gateway"}
    for method in ("CreateAccount", "CloseAccount"):
        assert everything[f"/ledger.v1.LedgerService/{method}"] == {"gateway", "operator"}


def _documented() -> dict[str, frozenset[str]]:
    """The access table of docs/security.md: rows like | `/pkg.Service/Method` | `gateway`, `operator` |."""
    rows = {}
    for line in (ROOT / "docs" / "security.md").read_text().splitlines():
        if match := re.match(r"^\|\s*`(/[\w.]+/\w+)`\s*\|(.*)\|\s*$", line):
            rows[match.group(1)] = frozenset(re.findall(r"`(\w+)`", match.group(2)))
    return rows


def test_docs_security_shows_exactly_the_access_tables():
    code = {m: ids for table in TABLES.values() for m, ids in table.items()}
    assert _documented() == code


async def test_a_gateway_refused_by_a_service_answers_500_without_internal_names(infra, services):
    """A gateway deployed with the wrong identity (here `wallet`'s certificate): the ledger refuses it,
    and the REST client gets a 500 with a stable code, not the internal method or identity."""
    import httpx

    from gateway.app import create_app
    from gateway.config import GatewaySettings
    from svckit import pki

    key = "mpk_" + "w" * 43
    wrong = pki.files(infra.pki_dir, "wallet")
    settings = infra.settings(
        GatewaySettings,
        db_suffix="gateway_wrong_identity",
        environment="development",
        dev_api_key=key,
        tls_cert_file=wrong.cert_file,
        tls_key_file=wrong.key_file,
        ledger_addr=services["ledger"].address,
        payment_addr=services["payment"].address,
        wallet_addr=services["wallet"].address,
        recon_addr=services["recon"].address,
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
            reply = await client.post(
                "/v1/ledger/accounts",
                json={"name": f"asset:bank:w{uid()}", "currency": "USD"},
                headers={"Authorization": f"Bearer {key}", "Idempotency-Key": new_key()},
            )
    assert reply.status_code == 500
    body = reply.json()
    assert body["code"] == "UPSTREAM_REFUSED_CALLER"
    assert "wallet" not in reply.text and "LedgerService" not in reply.text
