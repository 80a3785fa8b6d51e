"""The retry and dead-letter channels, with the atomic moves between them and the live stream.

Every move is one Lua script over keys in the same ``{namespace}`` hash slot, so it is atomic on a
single Redis and on Redis Cluster: a due retry is removed from ``{ns}:retry`` *and* appended to its
stream, or neither; a replay deletes the dead letter *and* appends it, so two operators replaying the
same entry re-publish it once.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from svckit.events.config import Keys
from svckit.events.message import Attempt, Event
from svckit.redisclient import RedisClient

# ZREM first: of several movers racing for one member, only the one that removed it publishes it.
_MOVE_DUE = """
if redis.call('ZREM', KEYS[1], ARGV[1]) == 1 then
  return redis.call('XADD', KEYS[2], '*', unpack(ARGV, 2))
end
return false
"""

_DISCARD = """
if redis.call('XDEL', KEYS[1], ARGV[1]) == 1 then
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', '100000', '*', unpack(ARGV, 2))
  return 1
end
return 0
"""

_REPLAY = """
if redis.call('XDEL', KEYS[1], ARGV[1]) == 1 then
  return redis.call('XADD', KEYS[2], '*', unpack(ARGV, 2))
end
return false
"""


def utc_now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _flatten(fields: dict[str, str]) -> list[str]:
    return [x for kv in fields.items() for x in kv]


@dataclass(frozen=True)
class DeadLetterEntry:
    """One entry of the dead-letter stream."""

    id: str
    stream: str
    group: str
    event: Event
    """The event as last delivered; ``event.history`` holds every failed attempt, the last included."""
    last_error: str
    reason: str
    dead_at: str

    @classmethod
    def from_entry(cls, entry_id: str, fields: dict[str, str]) -> DeadLetterEntry:
        return cls(
            id=entry_id,
            stream=fields.get("stream", ""),
            group=fields.get("group", ""),
            event=Event.from_fields(fields),
            last_error=fields.get("error", ""),
            reason=fields.get("reason", ""),
            dead_at=fields.get("dead_at", ""),
        )


class Channels:
    """Scheduling retries, dead-lettering, moving due retries and replaying dead letters."""

    def __init__(self, redis: RedisClient, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys
        self._replay = redis.register_script(_REPLAY)
        self._discard = redis.register_script(_DISCARD)

    # -- called by consumers, together with the XACK of the failed delivery ---------------------

    def schedule_retry(self, pipe, stream: str, event: Event, delay_seconds: float) -> None:
        """Queue on ``pipe`` (a MULTI pipeline) a retry of ``event`` due after ``delay_seconds``."""
        member = json.dumps({"s": stream, "f": event.to_fields()}, separators=(",", ":"), sort_keys=True)
        due_ms = int(time.time() * 1000 + delay_seconds * 1000)
        pipe.zadd(self.keys.retry, {member: due_ms})

    def dead_letter(self, pipe, stream: str, group: str, event: Event, failed: Attempt, reason: str) -> None:
        """Queue on ``pipe`` the dead letter of ``event``: the event, its attempts, the last error."""
        kept = replace(event, target_group=group, history=(*event.history, failed))
        fields = {
            **kept.to_fields(),
            "stream": stream,
            "group": group,
            "error": failed.error,
            "reason": reason,
            "dead_at": failed.at,
        }
        pipe.xadd(self.keys.dlq, fields)

    # -- the mover -----------------------------------------------------------------------------

    async def move_due(self, limit: int = 500, now_ms: int | None = None) -> int:
        """Re-publish retries whose due time has passed to their live stream; returns how many."""
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        due: Any = await self.redis.zrangebyscore(self.keys.retry, "-inf", now_ms, start=0, num=limit)
        if not due:
            return 0
        async with self.redis.pipeline(transaction=False) as pipe:
            for member in due:
                spec = json.loads(member)
                # EVAL, not the registered script's EVALSHA: a cluster pipeline refuses EVALSHA (a
                # node may lack the script); the server caches the compiled body either way.
                pipe.eval(_MOVE_DUE, 2, self.keys.retry, spec["s"], member, *_flatten(spec["f"]))
            results = await pipe.execute()
        return sum(1 for r in results if r)

    async def scheduled(self) -> int:
        return int(await self.redis.zcard(self.keys.retry))

    # -- operators -----------------------------------------------------------------------------

    async def list_dead_letters(self, after_id: str | None = None, limit: int = 100) -> list[DeadLetterEntry]:
        start = f"({after_id}" if after_id else "-"
        entries: Any = await self.redis.xrange(self.keys.dlq, start, "+", count=limit)
        return [DeadLetterEntry.from_entry(i, f) for i, f in entries]

    async def get_dead_letter(self, entry_id: str) -> DeadLetterEntry | None:
        entries: Any = await self.redis.xrange(self.keys.dlq, entry_id, entry_id, count=1)
        return DeadLetterEntry.from_entry(*entries[0]) if entries else None

    async def replay(self, entry: DeadLetterEntry) -> str | None:
        """Move one dead letter back to its stream for its group, with a fresh attempt count (1) and
        its history kept. Returns the new stream entry id, or None if someone else moved it first."""
        event = replace(entry.event, attempt=1, target_group=entry.group or None)
        fields = {**event.to_fields(), "replayed_from": entry.id}
        new_id = await self._replay(keys=[self.keys.dlq, entry.stream], args=[entry.id, *_flatten(fields)])
        return new_id.decode() if isinstance(new_id, bytes) else new_id

    async def discard(self, entry: DeadLetterEntry, reason: str, operator: str = "") -> bool:
        """Delete a dead letter, recording it with the reason in the ``{ns}:dlq:discarded`` audit
        stream. Returns False when it was already gone."""
        audit = {
            "dead_letter_id": entry.id,
            "event_id": entry.event.event_id,
            "stream": entry.stream,
            "group": entry.group,
            "reason": reason,
            "operator": operator,
            "discarded_at": utc_now_iso(),
        }
        deleted = await self._discard(
            keys=[self.keys.dlq, self.keys.discarded], args=[entry.id, *_flatten(audit)]
        )
        return bool(deleted)
