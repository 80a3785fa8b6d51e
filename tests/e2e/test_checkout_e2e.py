"""Pay-in end to end: REST gateway → payment service → PSP simulator (stripe SDK) → signed webhooks
back through the gateway → settlement into the wallet and the ledger over the event backbone."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest

from svckit.gen.ledger.v1 import ledger_service_pb2 as lpb
from svckit.gen.ledger.v1 import ledger_service_pb2_grpc as lpb_grpc
from svckit.gen.recon.v1 import recon_service_pb2 as rpb
from svckit.gen.recon.v1 import recon_service_pb2_grpc as rpb_grpc
from svckit.gen.wallet.v1 import wallet_service_pb2 as wpb
from svckit.gen.wallet.v1 import wallet_service_pb2_grpc as wpb_grpc
from svckit.money import parse_amount


def _body(sim_url: str, amounts: list[str], payment_method: str | None = None) -> dict[str, Any]:
    run = uuid.uuid4().hex[:10]
    body: dict[str, Any] = {
        "checkout_id": f"chk_{run}",
        "buyer_info": {"buyer_id": f"buyer_{run}", "email": "ada@example.com"},
        "payment_orders": [
            {
                "payment_order_id": f"po_{run}_{i}",
                "seller_account": f"seller_{run}_{i}",
                "amount": a,
                "currency": "USD",
            }
            for i, a in enumerate(amounts)
        ],
        "success_url": f"{sim_url}/_sim/landing?result=paid&session={{CHECKOUT_SESSION_ID}}",
        "cancel_url": f"{sim_url}/_sim/landing?result=cancel",
    }
    if payment_method:
        body["payment_method"] = payment_method
    return body


async def _until(check, what: str, within_seconds: float = 30.0) -> Any:
    deadline = asyncio.get_running_loop().time() + within_seconds
    while True:
        result = await check()
        if result:
            return result
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)


async def _settled_checkout(http: httpx.AsyncClient, checkout_id: str) -> dict[str, Any]:
    seen: list[Any] = []

    async def check() -> dict[str, Any] | None:
        event = (await http.get(f"/v1/checkouts/{checkout_id}")).json()
        orders = event["payment_orders"]
        seen[:] = [(o["state"], o["wallet_updated"], o["ledger_updated"]) for o in orders]
        done = all(o["state"] == "success" and o["wallet_updated"] and o["ledger_updated"] for o in orders)
        return event if done else None

    try:
        return await _until(check, f"checkout {checkout_id} to succeed and settle")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; last seen (state, wallet, ledger): {seen}") from None


async def _assert_books(channels, event: dict[str, Any]) -> None:
    """The books as the operator checks them (``operator`` may read both and run the comparison)."""
    wallet = wpb_grpc.WalletServiceStub(channels["wallet"])
    recon = rpb_grpc.ReconServiceStub(channels["recon"])
    for order in event["payment_orders"]:
        minor = parse_amount(order["amount"], order["currency"])
        commission = parse_amount(order["commission"], order["currency"])
        reply = await wallet.GetWallet(
            wpb.GetWalletRequest(seller_id=order["seller_account"], currency="USD")
        )
        assert reply.wallet.available.amount_minor == minor - commission
        check = await recon.CompareWalletsWithLedger(
            rpb.CompareWalletsWithLedgerRequest(seller_id=order["seller_account"])
        )
        assert check.ok and check.wallets_checked == 1 and check.accounts_checked == 1, check
    verify = await lpb_grpc.LedgerServiceStub(channels["ledger"]).VerifyLedger(lpb.VerifyLedgerRequest())
    assert verify.ok, list(verify.findings)


def _pay_in_browser(browser: Any, url: str, card: str) -> str:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(url)
    for field_id, value in (("cardnumber", card), ("exp", "12/34"), ("cvc", "123"), ("name", "Ada Lovelace")):
        element = browser.find_element(By.ID, field_id)
        element.clear()
        element.send_keys(value)
    browser.find_element(By.ID, "submit").click()
    WebDriverWait(browser, 15).until(lambda d: "/_sim/landing" in d.current_url)
    return browser.current_url


@pytest.mark.browser
async def test_hosted_checkout_paid_in_a_real_browser_settles_three_sellers(
    http, browser, shared_psp, operator_channels
):
    body = _body(shared_psp.base_url, ["25.00", "9.90", "120.35"])
    created = await http.post("/v1/payments", json=body, headers={"Idempotency-Key": uuid.uuid4().hex})
    assert created.status_code == 201, created.text
    event = created.json()
    assert {o["state"] for o in event["payment_orders"]} == {"executing"}

    landed = await asyncio.to_thread(
        _pay_in_browser, browser, event["hosted_page_url"], "4242 4242 4242 4242"
    )
    assert "result=paid" in landed and "session=cs_" in landed

    settled = await _settled_checkout(http, body["checkout_id"])
    assert [o["commission"] for o in settled["payment_orders"]] == ["2.50", "0.99", "12.04"]  # 10 %, half-up
    await _assert_books(operator_channels, settled)
    history = (await http.get(f"/v1/payments/{body['payment_orders'][0]['payment_order_id']}/history")).json()
    assert [t["to"] for t in history["transitions"]][-1] == "success"


async def test_hosted_checkout_with_plain_form_posts(http, shared_psp, operator_channels):
    body = _body(shared_psp.base_url, ["10.00", "20.00", "30.00"])
    event = (await http.post("/v1/payments", json=body, headers={"Idempotency-Key": uuid.uuid4().hex})).json()
    async with httpx.AsyncClient(timeout=10) as buyer:
        paid = await buyer.post(
            event["hosted_page_url"],
            data={"cardnumber": "4242424242424242", "exp": "12/34", "cvc": "123", "action": "pay"},
        )
    assert paid.status_code == 303
    await _assert_books(operator_channels, await _settled_checkout(http, body["checkout_id"]))


async def test_direct_mode_success_decline_and_three_d_secure(http, shared_psp, operator_channels):
    ok = _body(shared_psp.base_url, ["5.00", "6.00", "7.00"], payment_method="pm_card_visa")
    reply = await http.post("/v1/payments", json=ok, headers={"Idempotency-Key": uuid.uuid4().hex})
    assert {o["state"] for o in reply.json()["payment_orders"]} == {"success"}
    # One charge for the three sellers: one PaymentIntent at the PSP, every order's reference.
    listed = shared_psp.client().v1.payment_intents.list(params={"limit": 100}).auto_paging_iter()
    (intent,) = [
        pi
        for pi in (p.to_dict() for p in listed)
        if (pi.get("metadata") or {}).get("checkout_id") == ok["checkout_id"]
    ]
    assert intent["amount"] == 1800
    assert {o["psp_reference"] for o in reply.json()["payment_orders"]} == {intent["id"]}
    await _assert_books(operator_channels, await _settled_checkout(http, ok["checkout_id"]))

    declined = _body(
        shared_psp.base_url, ["5.00"], payment_method="pm_card_visa_chargeDeclinedInsufficientFunds"
    )
    order = (
        await http.post("/v1/payments", json=declined, headers={"Idempotency-Key": uuid.uuid4().hex})
    ).json()
    assert (order["payment_orders"][0]["state"], order["payment_orders"][0]["failure_code"]) == (
        "failed",
        "insufficient_funds",
    )

    for action, final in (("complete", "success"), ("fail", "failed")):
        secure = _body(shared_psp.base_url, ["8.00"], payment_method="pm_card_authenticationRequired")
        pending = (
            await http.post("/v1/payments", json=secure, headers={"Idempotency-Key": uuid.uuid4().hex})
        ).json()
        order = pending["payment_orders"][0]
        assert order["state"] == "pending" and "/3ds/" in order["next_action_url"]
        async with httpx.AsyncClient(timeout=10) as buyer:
            await buyer.post(order["next_action_url"], data={"action": action})

        async def finished(order_id=order["payment_order_id"], final=final):
            return (await http.get(f"/v1/payments/{order_id}")).json()["state"] == final

        await _until(finished, f"3-D Secure {action} to end {final} by webhook")


async def test_fifty_concurrent_identical_posts_charge_once(http, shared_psp):
    body = _body(shared_psp.base_url, ["11.00", "12.00"], payment_method="pm_card_visa")
    key = uuid.uuid4().hex

    async def post() -> httpx.Response:
        # Fifty writes at once may meet the gateway's admission bound: 503 OVERLOADED with Retry-After, which
        # a client answers by sending the same request again, as this one does (a few times at most).
        for _ in range(5):
            # Fifty at once on a loaded 2-core machine can take longer than the client's usual 10 s.
            reply = await http.post("/v1/payments", json=body, headers={"Idempotency-Key": key}, timeout=60)
            if reply.status_code != 503:
                return reply
            assert reply.json()["code"] == "OVERLOADED" and reply.headers["retry-after"]
            await asyncio.sleep(0.2)
        return reply

    replies = await asyncio.gather(*(post() for _ in range(50)))
    assert {r.status_code for r in replies} <= {201, 409}
    created = [r for r in replies if r.status_code == 201]
    assert created and all(r.json() == created[0].json() for r in created)
    assert all(
        r.json()["code"] == "IDEMPOTENCY_KEY_IN_USE" and r.headers["retry-after"]
        for r in replies
        if r.status_code == 409
    )
    intents = [
        pi
        for pi in shared_psp.admin.state("payment_intent")["objects"]["payment_intent"]
        if (pi.get("metadata") or {}).get("checkout_id") == body["checkout_id"]
    ]
    assert len(intents) == 1  # one charge for the two sellers' cart
    assert {o["psp_reference"] for o in created[0].json()["payment_orders"]} == {intents[0]["id"]}
    again = await http.post("/v1/payments", json=body, headers={"Idempotency-Key": key})
    assert again.status_code == 201 and again.headers["idempotent-replayed"] == "true"
    changed = {**body, "payment_orders": body["payment_orders"][:1]}
    assert (
        await http.post("/v1/payments", json=changed, headers={"Idempotency-Key": key})
    ).status_code == 422
