"""Webhook faults injected by the PSP simulator on the real delivery path (simulator → gateway →
payment service): duplicated, out-of-order and delayed deliveries end right; dropped ones are
resolved by the janitor."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import sqlalchemy as sa

from payment_svc import bootstrap


def _hosted(sim_url: str, n: int) -> dict:
    run = uuid.uuid4().hex[:10]
    return {
        "checkout_id": f"chk_{run}",
        "buyer_info": {"buyer_id": f"buyer_{run}"},
        "payment_orders": [
            {
                "payment_order_id": f"po_{run}_{i}",
                "seller_account": f"seller_{run}_{i}",
                "amount": "14.00",
                "currency": "USD",
            }
            for i in range(n)
        ],
        "success_url": f"{sim_url}/_sim/landing?result=paid",
        "cancel_url": f"{sim_url}/_sim/landing?result=cancel",
    }


async def _create_and_pay(http, sim, n: int = 2) -> dict:
    body = _hosted(sim.base_url, n)
    event = (await http.post("/v1/payments", json=body, headers={"Idempotency-Key": uuid.uuid4().hex})).json()
    async with httpx.AsyncClient(timeout=10) as buyer:
        paid = await buyer.post(
            event["hosted_page_url"],
            data={"cardnumber": "4242424242424242", "exp": "12/34", "cvc": "123", "action": "pay"},
        )
    assert paid.status_code == 303
    return body


async def _states(http, checkout_id: str) -> set[str]:
    return {o["state"] for o in (await http.get(f"/v1/checkouts/{checkout_id}")).json()["payment_orders"]}


async def _eventually(http, checkout_id: str, expected: set[str], within_seconds: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + within_seconds
    while (states := await _states(http, checkout_id)) != expected:
        assert asyncio.get_running_loop().time() < deadline, f"states stayed {states}"
        await asyncio.sleep(0.1)


async def test_duplicated_out_of_order_and_delayed_deliveries_end_in_success(http, shared_psp):
    shared_psp.admin.set_faults(
        [
            {"kind": "webhook_duplicate", "event_type": "payment_intent.succeeded"},
            {"kind": "webhook_out_of_order", "event_type": "charge.succeeded"},
            {"kind": "webhook_delay", "event_type": "checkout.session.completed", "delay_seconds": 120},
        ],
        seed=4,
    )
    try:
        body = await _create_and_pay(http, shared_psp)
        await _eventually(http, body["checkout_id"], {"success"})
        shared_psp.admin.advance(seconds=121)  # the delayed completion arrives late, after success
        await asyncio.sleep(0.5)
        assert await _states(http, body["checkout_id"]) == {"success"}
        kinds = {f["kind"] for f in shared_psp.admin.injected_faults()}
        assert {"webhook_duplicate", "webhook_out_of_order", "webhook_delay"} <= kinds
        history = (
            await http.get(f"/v1/payments/{body['payment_orders'][0]['payment_order_id']}/history")
        ).json()
        assert [t["to"] for t in history["transitions"]].count("success") == 1
    finally:
        shared_psp.admin.clear_faults()


async def test_dropped_deliveries_are_resolved_by_the_janitor(http, shared_psp, services):
    shared_psp.admin.set_faults(
        [
            {"kind": "webhook_drop", "event_type": "payment_intent."},
            {"kind": "webhook_drop", "event_type": "checkout.session."},
        ]
    )
    try:
        body = await _create_and_pay(http, shared_psp)
        await asyncio.sleep(1.0)
        assert await _states(http, body["checkout_id"]) == {"executing"}  # nothing arrived
        assert shared_psp.admin.injected_faults("webhook_drop")
    finally:
        shared_psp.admin.clear_faults()
    handle = services["payment"]
    async with handle.engine.begin() as conn:
        await conn.execute(
            sa.text("UPDATE payment_orders SET next_check_at = now() WHERE checkout_id = :c"),
            {"c": body["checkout_id"]},
        )
    settings = handle.settings
    janitor = bootstrap.build_service(settings, handle.engine)
    try:
        await janitor.janitor_pass()
    finally:
        await janitor.close()
    assert await _states(http, body["checkout_id"]) == {"success"}
    # An order the janitor settles reaches the wallet and the ledger like any other.
    deadline = asyncio.get_running_loop().time() + 20
    while not all(
        o["wallet_updated"] and o["ledger_updated"]
        for o in (await http.get(f"/v1/checkouts/{body['checkout_id']}")).json()["payment_orders"]
    ):
        assert asyncio.get_running_loop().time() < deadline, "janitor-resolved orders were not settled"
        await asyncio.sleep(0.1)
