"""Stream housekeeping shared by the relay, consumers and the admin: groups, lag, safe trimming."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from redis.exceptions import ResponseError

from svckit.redisclient import RedisClient

MAX_TRIM_SCAN = 10_000
"""At most this many entries are scanned to find the length cut-off in one trim pass."""


def parse_id(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def format_id(parsed: tuple[int, int]) -> str:
    return f"{parsed[0]}-{parsed[1]}"


@dataclass(frozen=True)
class GroupInfo:
    name: str
    consumers: int
    pending: int
    """Delivered to a consumer of the group, not yet acknowledged."""
    lag: int | None
    """Entries not yet delivered to the group; None when Redis cannot tell (after a trim or XDEL)."""
    last_delivered_id: str


async def ensure_group(redis: RedisClient, stream: str, group: str, start_id: str = "0") -> None:
    """Create the group (and the stream) if missing. A new group starts at the oldest retained entry,
    so a consumer added later still sees every event the stream holds."""
    try:
        await redis.xgroup_create(stream, group, id=start_id, mkstream=True)
    except ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


async def group_infos(redis: RedisClient, stream: str) -> list[GroupInfo]:
    try:
        raw = await redis.xinfo_groups(stream)
    except ResponseError:
        return []  # no such stream
    infos = []
    for g in raw:
        lag = g.get("lag")
        infos.append(
            GroupInfo(
                name=g["name"],
                consumers=int(g.get("consumers", 0)),
                pending=int(g.get("pending", 0)),
                lag=None if lag is None else int(lag),
                last_delivered_id=g.get("last-delivered-id", "0-0"),
            )
        )
    return infos


async def _oldest_needed(redis: RedisClient, stream: str, groups: list[GroupInfo]) -> tuple[int, int]:
    """Smallest entry id some group still needs: its oldest pending entry, or the first entry after
    the last one delivered to it (entries after that are undelivered)."""
    floor: tuple[int, int] | None = None
    for g in groups:
        ms, seq = parse_id(g.last_delivered_id)
        need = (ms, seq + 1)
        if g.pending:
            summary = await redis.xpending(stream, g.name)
            if summary.get("pending") and summary.get("min"):
                need = min(need, parse_id(summary["min"]))
        floor = need if floor is None else min(floor, need)
    assert floor is not None
    return floor


async def trim(
    redis: RedisClient,
    stream: str,
    max_len: int,
    max_age_seconds: float,
    approximate: bool = True,
    now_ms: int | None = None,
) -> int:
    """Trim ``stream`` to roughly ``max_len`` entries and ``max_age_seconds``, but never past an entry
    any consumer group still needs (pending or undelivered). Returns the number of entries removed.

    A stream with no group is left alone: nobody has read it yet, and a group created later starts
    from its oldest entry."""
    groups = await group_infos(redis, stream)
    if not groups:
        return 0
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    target = (max(0, now_ms - int(max_age_seconds * 1000)), 0)
    length = await redis.xlen(stream)
    excess = length - max_len
    if excess > 0:
        scanned: Any = await redis.xrange(stream, "-", "+", count=min(excess, MAX_TRIM_SCAN) + 1)
        if scanned:
            target = max(target, parse_id(scanned[-1][0]))
    minid = min(target, await _oldest_needed(redis, stream, groups))
    if minid <= (0, 0):
        return 0
    return int(await redis.xtrim(stream, minid=format_id(minid), approximate=approximate))
