"""The message format on the streams: one flat Redis Stream entry per event.

Fields (all strings, as Redis stores them):

    event_id      UUID given by the outbox; the deduplication key of every consumer
    type          e.g. ``payment.order.succeeded``
    aggregate_id  the entity the event is about (order id); order is kept per aggregate
    payload       JSON object
    occurred_at   ISO-8601 UTC time the outbox row was written (in the producer's transaction)
    seq           outbox sequence number (diagnostics)
    attempt       1 on first delivery; the retry mover and replays set it (absent means 1)
    group         only on retried/replayed copies: the one consumer group meant to process it;
                  every other group acknowledges the copy without running its handler
    history       only on retried copies: JSON list of earlier attempts {attempt, at, error}
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class Attempt:
    """One failed attempt: its number, when it failed (ISO-8601 UTC) and the error."""

    attempt: int
    at: str
    error: str

    def as_dict(self) -> dict[str, Any]:
        return {"attempt": self.attempt, "at": self.at, "error": self.error}


@dataclass(frozen=True)
class Event:
    """An event as a handler sees it."""

    event_id: str
    type: str
    aggregate_id: str
    payload: dict[str, Any]
    occurred_at: str
    seq: int = 0
    attempt: int = 1
    target_group: str | None = None
    history: tuple[Attempt, ...] = field(default=())
    stream_id: str = ""
    """Id of the stream entry it was read from (differs between a delivery and its retries)."""

    @property
    def occurred_at_datetime(self) -> datetime:
        return datetime.fromisoformat(self.occurred_at)

    def to_fields(self) -> dict[str, str]:
        fields = {
            "event_id": self.event_id,
            "type": self.type,
            "aggregate_id": self.aggregate_id,
            "payload": json.dumps(self.payload, separators=(",", ":"), sort_keys=True),
            "occurred_at": self.occurred_at,
            "seq": str(self.seq),
            "attempt": str(self.attempt),
        }
        if self.target_group:
            fields["group"] = self.target_group
        if self.history:
            fields["history"] = json.dumps([a.as_dict() for a in self.history], separators=(",", ":"))
        return fields

    @classmethod
    def from_fields(cls, fields: dict[str, str], stream_id: str = "") -> Event:
        history = tuple(Attempt(**a) for a in json.loads(fields.get("history") or "[]"))
        return cls(
            event_id=fields["event_id"],
            type=fields.get("type", ""),
            aggregate_id=fields.get("aggregate_id", ""),
            payload=json.loads(fields.get("payload") or "{}"),
            occurred_at=fields.get("occurred_at", ""),
            seq=int(fields.get("seq") or 0),
            attempt=int(fields.get("attempt") or 1),
            target_group=fields.get("group") or None,
            history=history,
            stream_id=stream_id,
        )

    def waiting_again(self, group: str, waited: Attempt) -> Event:
        """The copy to deliver again to ``group`` after it had to wait: the same attempt number, and
        the wait in its history once (not once per poll, which would grow the entry over a long wait)."""
        last = self.history[-1] if self.history else None
        again = last is not None and (last.attempt, last.error) == (waited.attempt, waited.error)
        history = self.history if again else (*self.history, waited)
        return replace(self, target_group=group, history=history, stream_id="")

    def next_attempt(self, group: str, failed: Attempt) -> Event:
        """The copy to deliver again to ``group`` after ``failed``."""
        return replace(
            self, attempt=self.attempt + 1, target_group=group, history=(*self.history, failed), stream_id=""
        )
