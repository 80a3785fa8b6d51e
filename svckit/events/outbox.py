"""Writing events: ``await outbox.add(conn, stream=..., aggregate_id=..., type=..., payload=...)``.

Call it with the connection of the unit of work that changes the state, so the event commits or rolls
back with it: nothing is published that was not committed, and nothing committed is lost (the relay
publishes it, however late).

Per-aggregate commit order: ``add`` takes a transaction-scoped advisory lock on (stream, aggregate)
before taking its sequence number, so a second transaction writing an event for the same aggregate
waits until the first commits or rolls back; sequence order is then commit order for each aggregate.
A unit of work that writes events for several aggregates should use :func:`add_many`, which takes
the aggregates' locks in one fixed order (two such units of work cannot deadlock), or call ``add`` in
a fixed order of aggregate ids, as it would lock rows.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
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


@dataclass(frozen=True)
class EmbeddedEvent:
    """One event to write from inside a statement of the caller's own (a data-modifying CTE).

    For a unit of work that is a single statement, e.g. "move this row if it is still in one of these
    states, and if it moved, record the event": ``sql(source)`` is an INSERT that writes the event once
    if ``source`` (the name of a CTE of that statement) yields a row, and nothing otherwise; ``params``
    are its bind parameters (all prefixed ``outbox_``, in psycopg's ``%(name)s`` style: such statements
    run on a :class:`svckit.db.DriverPool` connection). Same per-aggregate lock as :func:`add`.
    """

    params: dict[str, Any]

    @staticmethod
    def sql(source: str) -> str:
        if not source.isidentifier():
            raise ValueError(f"source must be the name of a CTE, not {source!r}")
        return (
            "INSERT INTO event_outbox (event_id, stream, aggregate_id, partition, type, payload)"
            " SELECT CAST(%(outbox_event_id)s AS uuid), %(outbox_stream)s, %(outbox_aggregate_id)s,"
            " %(outbox_partition)s, %(outbox_type)s, CAST(%(outbox_payload)s AS jsonb)"
            f" FROM (SELECT 1 FROM {source} LIMIT 1) AS source,"
            " (SELECT pg_advisory_xact_lock(%(outbox_lock_key)s)) AS serialize_per_aggregate"
        )


def embed(
    *, stream: str, aggregate_id: str, type: str, payload: Mapping[str, Any], event_id: str | None = None
) -> EmbeddedEvent:
    """An event for :class:`EmbeddedEvent`; the arguments are those of :func:`add`."""
    if not stream or not aggregate_id or not type:
        raise ValueError("stream, aggregate_id and type are required")
    return EmbeddedEvent(
        {
            "outbox_event_id": event_id or str(uuid.uuid4()),
            "outbox_stream": stream,
            "outbox_aggregate_id": aggregate_id,
            "outbox_partition": partition_of(aggregate_id),
            "outbox_type": type,
            "outbox_payload": json.dumps(payload, separators=(",", ":")),
            "outbox_lock_key": _digest("outbox", stream, aggregate_id),
        }
    )


@dataclass(frozen=True)
class NewEvent:
    """One event for :func:`add_many`."""

    aggregate_id: str
    type: str
    payload: Mapping[str, Any]
    event_id: str = field(default_factory=lambda: str(uuid.uuid4()))


# The locks are an InitPlan of the WHERE clause: evaluated once, before the first row reaches the
# insert and takes its seq, in the (sorted) order of the keys array.
_INSERT_MANY = sa.text(
    """
    WITH locks AS MATERIALIZED (
      SELECT pg_advisory_xact_lock(k) FROM unnest(CAST(:keys AS bigint[])) WITH ORDINALITY AS l(k, o) ORDER BY o
    )
    INSERT INTO event_outbox (event_id, stream, aggregate_id, partition, type, payload)
    SELECT CAST(e AS uuid), :stream, a, p, t, CAST(j AS jsonb)
    FROM unnest(CAST(:ids AS text[]), CAST(:aggs AS text[]), CAST(:parts AS smallint[]),
                CAST(:types AS text[]), CAST(:payloads AS text[])) WITH ORDINALITY AS x(e, a, p, t, j, o)
    WHERE (SELECT count(*) FROM locks) >= 0
    ORDER BY o
    """
)


async def add_many(conn: AsyncConnection, *, stream: str, events: Sequence[NewEvent]) -> list[str]:
    """Write several events in the caller's transaction, in list order, with one statement.

    The per-aggregate locks are taken first, in ascending key order, so concurrent units of work
    writing events for overlapping aggregates queue instead of deadlocking."""
    if not events:
        return []
    if not stream or any(not e.aggregate_id or not e.type for e in events):
        raise ValueError("stream, aggregate_id and type are required")
    keys = sorted({_digest("outbox", stream, e.aggregate_id) for e in events})
    await conn.execute(
        _INSERT_MANY,
        {
            "keys": keys,
            "stream": stream,
            "ids": [e.event_id for e in events],
            "aggs": [e.aggregate_id for e in events],
            "parts": [partition_of(e.aggregate_id) for e in events],
            "types": [e.type for e in events],
            "payloads": [json.dumps(e.payload, separators=(",", ":")) for e in events],
        },
    )
    return [e.event_id for e in events]
