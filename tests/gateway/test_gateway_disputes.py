"""A dispute through the whole path: the simulator's charge.dispute.created webhook, signed, through the gateway
to the payment service, and the checkout's disputes on GET /v1/checkouts/{id}."""

from __future__ import annotations

import asyncio
import uuid

import httpx


async def test_a_disputed_charge_shows_its_dispute_on_the_checkout(http: httpx.AsyncClient) -> None:
    checkout = f"chk_{uuid.uuid4().hex[:12]}"
    body = {
        "checkout_id": checkout,
        "buyer_info": {"buyer_id": f"buyer_{checkout}", "email": "ada@example.com"},
        "payment_orders": [
            {
                "payment_order_id": f"{checkout}_0",
                "seller_account": "seller_0",
                "amount": "30.00",
                "currency": "USD",
            },
            {
                "payment_order_id": f"{checkout}_1",
                "seller_account": "seller_1",
                "amount": "12.50",
                "currency": "USD",
            },
        ],
        "payment_method": "pm_card_createDispute",
    }
    created = await http.post("/v1/payments", json=body, headers={"Idempotency-Key": uuid.uuid4().hex})
    assert created.status_code == 201, created.text

    for _ in range(100):  # the webhook arrives asynchronously
        event = (await http.get(f"/v1/checkouts/{checkout}")).json()
        if event["disputes"]:
            break
        await asyncio.sleep(0.1)
    [dispute] = event["disputes"]
    assert dispute["dispute_id"].startswith("dp_")
    assert (dispute["amount"], dispute["currency"], dispute["status"], dispute["reason"]) == (
        "42.50",
        "USD",
        "needs_response",
        "fraudulent",
    )
    assert dispute["evidence_due_by"] and dispute["created_at"]
    assert {o["state"] for o in event["payment_orders"]} == {"success"}
