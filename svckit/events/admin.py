"""Operating the backbone: the rules behind the admin RPCs and the CLI (transport-free, typed errors)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from svckit.errors import InvalidArgument, NotFound
from svckit.events import streams
from svckit.events.channels import Channels, DeadLetterEntry
from svckit.events.config import Keys
from svckit.events.metrics import EVENTS_REPLAYED
from svckit.logging import get_logger
from svckit.redisclient import RedisClient

log = get_logger(__name__)

_ENTRY_ID = re.compile(r"^\d{1,20}-\d{1,20}$")
MAX_PAGE_SIZE = 1000


@dataclass(frozen=True)
class StreamStatus:
    name: str
    length: int
    groups: list[streams.GroupInfo]


@dataclass(frozen=True)
class Overview:
    streams: list[StreamStatus]
    scheduled_retries: int
    dead_letters: int


def _check_id(entry_id: str) -> str:
    if not _ENTRY_ID.match(entry_id or ""):
        raise InvalidArgument(
            "INVALID_DEAD_LETTER_ID",
            f"{entry_id!r} is not a stream entry id like 1700000000000-0",
            field="id",
        )
    return entry_id


class EventsAdmin:
    def __init__(self, redis: RedisClient, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys
        self.channels = Channels(redis, keys)

    async def overview(self) -> Overview:
        members: Any = await self.redis.smembers(self.keys.streams_set)  # decoded: a set of str
        names = set(members)
        if await self.redis.exists(self.keys.events):
            names.add(self.keys.events)
        result = []
        for name in sorted(names):
            result.append(
                StreamStatus(
                    name=name,
                    length=int(await self.redis.xlen(name)),
                    groups=await streams.group_infos(self.redis, name),
                )
            )
        return Overview(
            streams=result,
            scheduled_retries=await self.channels.scheduled(),
            dead_letters=int(await self.redis.xlen(self.keys.dlq)),
        )

    async def list_dead_letters(
        self, page_size: int = 100, page_token: str = ""
    ) -> tuple[list[DeadLetterEntry], str]:
        """A page of dead letters, oldest first, and the token of the next page ('' on the last)."""
        if page_size < 0:
            raise InvalidArgument("INVALID_PAGE_SIZE", "page_size must not be negative", field="page_size")
        size = min(page_size or 100, MAX_PAGE_SIZE)
        after = _check_id(page_token) if page_token else None
        page = await self.channels.list_dead_letters(after, size + 1)
        if len(page) > size:
            return page[:size], page[size - 1].id
        return page, ""

    async def get_dead_letter(self, entry_id: str) -> DeadLetterEntry:
        entry = await self.channels.get_dead_letter(_check_id(entry_id))
        if entry is None:
            raise NotFound("DEAD_LETTER_NOT_FOUND", f"no dead letter {entry_id}")
        return entry

    async def replay(self, entry_id: str) -> str:
        entry = await self.get_dead_letter(entry_id)
        new_id = await self.channels.replay(entry)
        if new_id is None:
            raise NotFound(
                "DEAD_LETTER_NOT_FOUND", f"dead letter {entry_id} was replayed or discarded meanwhile"
            )
        EVENTS_REPLAYED.labels(entry.stream).inc()
        log.info(
            "dead letter replayed",
            dead_letter_id=entry.id,
            event_id=entry.event.event_id,
            stream=entry.stream,
            group=entry.group,
            stream_entry_id=new_id,
        )
        return new_id

    async def replay_all(self, stream: str = "", group: str = "") -> int:
        replayed, after = 0, None
        while page := await self.channels.list_dead_letters(after, 500):
            after = page[-1].id
            for entry in page:
                if (stream and entry.stream != stream) or (group and entry.group != group):
                    continue
                if await self.channels.replay(entry):
                    EVENTS_REPLAYED.labels(entry.stream).inc()
                    replayed += 1
        log.info("dead letters replayed", count=replayed, stream=stream or "*", group=group or "*")
        return replayed

    async def discard(self, entry_id: str, reason: str, operator: str = "") -> DeadLetterEntry:
        if not reason.strip():
            raise InvalidArgument(
                "DISCARD_REASON_REQUIRED", "say why the dead letter is discarded", field="reason"
            )
        entry = await self.get_dead_letter(entry_id)
        if not await self.channels.discard(entry, reason.strip(), operator):
            raise NotFound(
                "DEAD_LETTER_NOT_FOUND", f"dead letter {entry_id} was replayed or discarded meanwhile"
            )
        log.warning(
            "dead letter discarded",
            dead_letter_id=entry.id,
            event_id=entry.event.event_id,
            stream=entry.stream,
            group=entry.group,
            reason=reason.strip(),
            operator=operator,
        )
        return entry
