"""Writing events: ``await outbox.add(conn, stream=..., aggregate_id=..., type=..., payload=...)``.

Call it with the connection of the unit of work that changes the state, so the event commits or rolls
back with it: nothing is published that was not committed, and nothing committed is lost (the relay
publishes it, however late).

Per-aggregate commit order: ``add`` takes a transaction-scoped advisory lock on (stream, aggregate)
before taking its sequence number, so a second transaction writing an event for the same aggregate
waits until the first commits or rolls back; sequence order is then commit order for each aggregate.
A unit of work that writes events for several aggregates must add them in a fixed order (sorted ids),
as it would lock rows, to avoid deadlocks.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from svckit.events.tables import OUTBOX_PARTITIONS


def _digest(*parts: str) -> int:
    data = "\x00".join(parts).encode()
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big", signed=True)


def partition_of(aggregate_id: str) -> int:
    """Stable relay partition of an aggregate (the same in every process and version)."""
    return _digest("partition", aggregate_id) % OUTBOX_PARTITIONS


_INSERT = sa.text(
    """
    INSERT INTO event_outbox (event_id, stream, aggregate_id, partition, type, payload)
    SELECT CAST(:event_id AS uuid), :stream, :aggregate_id, :partition, :type, CAST(:payload AS jsonb)
    FROM (SELECT pg_advisory_xact_lock(:lock_key)) AS serialize_per_aggregate
    RETURNING seq
    """
)


async def add(
    conn: AsyncConnection,
    *,
    stream: str,
    aggregate_id: str,
    type: str,
    payload: Mapping[str, Any],
    event_id: str | None = None,
) -> str:
    """Write one event in the caller's transaction and return its event id (a new UUID by default).

    ``stream`` is the full key, e.g. ``settings.keys.events`` (``{payments}:events``). ``payload``
    must be JSON-serialisable; money goes in as integer minor units plus currency, never floats.
    """
    if not stream or not aggregate_id or not type:
        raise ValueError("stream, aggregate_id and type are required")
    event_id = event_id or str(uuid.uuid4())
    await conn.execute(
        _INSERT,
        {
            "event_id": event_id,
            "stream": stream,
            "aggregate_id": aggregate_id,
            "partition": partition_of(aggregate_id),
            "type": type,
            "payload": json.dumps(payload, separators=(",", ":")),
            "lock_key": _digest("outbox", stream, aggregate_id),
        },
    )
    return event_id
