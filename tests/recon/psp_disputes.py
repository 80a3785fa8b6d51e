"""The simulator's dispute events, read through the ``stripe`` SDK and handed to the payment service as the
gateway hands it a webhook (for tests whose simulator has no gateway subscribed, or whose webhooks are dropped)."""

from __future__ import annotations

import json
import time
from typing import Any

from psp_sim.webhooks import sign
from svckit.gen.payments.v1 import payment_service_pb2 as pb


def dispute_events(sim, start: int, payment_intent: str) -> list[dict[str, Any]]:
    """The simulator's ``charge.dispute.*`` events of one PaymentIntent since ``start``, in the order it emitted
    them (it lists the newest first; several share a second, so their timestamps cannot order them)."""
    listed = sim.client().v1.events.list(params={"type": "charge.dispute.*", "created": {"gte": start}})
    events = [e.to_dict() for e in listed.auto_paging_iter()]
    return [e for e in reversed(events) if e["data"]["object"]["payment_intent"] == payment_intent]


async def deliver(sim, payments, events: list[dict[str, Any]]) -> None:
    """Hand the events to the payment service as the gateway does with a webhook: signed with the PSP's secret."""
    for event in events:
        payload = json.dumps(event)
        await payments.HandlePspEvent(
            pb.HandlePspEventRequest(
                event_id=event["id"],
                event_type=event["type"],
                payload=payload.encode(),
                stripe_signature=sign(payload, sim.webhook_secret, int(time.time())),
            )
        )
