"""Above its in-flight limit the gateway refuses writes fast (503 OVERLOADED + Retry-After) instead
of queueing them; refused requests store nothing and succeed when retried with the same key."""

from __future__ import annotations

import asyncio
import uuid

import sqlalchemy as sa


def _body() -> dict:
    run = uuid.uuid4().hex[:10]
    return {
        "checkout_id": f"chk_{run}",
        "buyer_info": {"buyer_id": f"buyer_{run}"},
        "payment_orders": [
            {
                "payment_order_id": f"po_{run}",
                "seller_account": "seller_adm",
                "amount": "5.00",
                "currency": "USD",
            }
        ],
        "success_url": "https://shop.example.com/ok",
        "cancel_url": "https://shop.example.com/cart",
    }


async def test_writes_beyond_the_limit_are_refused_fast_and_retry_cleanly(
    start_gateway, keys, services, shared_psp
):
    gw = await start_gateway(max_inflight_writes=1, admission_wait_seconds=0.05)
    key = (await keys.make("payments"))[1]
    # The PSP takes 400 ms per Checkout Session, so one admitted payment holds the only slot.
    shared_psp.admin.set_faults(
        [
            {
                "kind": "latency",
                "latency_ms": 400,
                "path_prefix": "/v1/checkout/sessions",
                "method": "POST",
                "count": 6,
            }
        ]
    )
    bodies = [_body() for _ in range(6)]
    try:
        async with gw.client(key) as client:
            replies = await asyncio.gather(
                *(
                    client.post("/v1/payments", json=b, headers={"Idempotency-Key": b["checkout_id"]})
                    for b in bodies
                )
            )
            refused = [(b, r) for b, r in zip(bodies, replies, strict=True) if r.status_code == 503]
            assert any(r.status_code == 201 for r in replies)
            assert refused, [r.status_code for r in replies]
            for _, r in refused:
                assert r.json()["code"] == "OVERLOADED"
                assert r.headers["retry-after"] == "1"
            async with services["payment"].engine.connect() as conn:
                for b, _ in refused:
                    stored = await conn.scalar(
                        sa.text("SELECT count(*) FROM payment_events WHERE checkout_id = :c"),
                        {"c": b["checkout_id"]},
                    )
                    assert stored == 0
            for b, _ in refused:  # a retry with the same key goes through once there is room
                again = await client.post(
                    "/v1/payments", json=b, headers={"Idempotency-Key": b["checkout_id"]}
                )
                assert again.status_code == 201, again.text
    finally:
        shared_psp.admin.clear_faults()
