"""Helpers of the seller, pay-out and books console tests: a seller registered for pay-outs with a
connected account that can be paid, funded through real pay-ins settled into its wallet."""

from __future__ import annotations

import asyncio
import time
import uuid

import httpx

from psp_sim.testing import SimServer


def connected_account(psp: SimServer) -> str:
    """A PSP connected account with a bank account, so pay-outs to it succeed."""
    acct = psp.client(max_network_retries=0).v1.accounts.create(
        params={
            "type": "custom",
            "country": "US",
            "external_account": {
                "object": "bank_account",
                "country": "US",
                "currency": "usd",
                "routing_number": "110000000",
                "account_number": "000123456789",
            },
        }
    )
    return str(acct.id)


async def registered_seller(admin: httpx.AsyncClient, psp: SimServer, prefix: str = "s-con") -> str:
    seller = f"{prefix}-{uuid.uuid4().hex[:10]}"
    r = await admin.post(
        "/v1/admin/sellers",
        json={"seller_account": seller, "psp_account": connected_account(psp), "payout_currency": "USD"},
        headers={"Idempotency-Key": uuid.uuid4().hex},
    )
    assert r.status_code == 201, r.text
    return seller


async def fund(api: httpx.AsyncClient, admin: httpx.AsyncClient, seller: str, amount: str = "40.00") -> str:
    """A buyer pays ``amount`` to ``seller`` (funds available at the PSP at once); returns the order id
    once the wallet and the ledger hold the seller's share."""
    checkout = f"chk_{uuid.uuid4().hex[:12]}"
    body = {
        "checkout_id": checkout,
        "buyer_info": {"buyer_id": f"buyer_{uuid.uuid4().hex[:8]}", "name": "Bo"},
        "payment_orders": [
            {
                "payment_order_id": f"{checkout}_0",
                "seller_account": seller,
                "amount": amount,
                "currency": "USD",
            }
        ],
        "payment_method": "pm_card_bypassPending",
    }
    r = await api.post("/v1/payments", json=body, headers={"Idempotency-Key": uuid.uuid4().hex})
    assert r.status_code == 201, r.text
    await settled(api, f"{checkout}_0")
    return f"{checkout}_0"


async def settled(api: httpx.AsyncClient, order_id: str, within: float = 20.0) -> None:
    """Wait until both books hold the order: the wallet credited and the ledger posted."""
    deadline = time.monotonic() + within
    while True:
        order = (await api.get(f"/v1/payments/{order_id}")).json()
        if order.get("wallet_updated") and order.get("ledger_updated"):
            return
        assert time.monotonic() < deadline, f"order {order_id} never settled: {order}"
        await asyncio.sleep(0.05)
