"""The one place a Redis client is made: one server, or a Redis (Valkey) Cluster.

``REDIS_CLUSTER=true`` (or a ``*_REDIS_CLUSTER``) makes ``REDIS_URL`` name one node of a cluster;
the client learns the slot map from it and follows fail-overs. Nothing else changes: every key the
services use carries a hash tag (``{payments}:events``, ``{payments}:retry``…, ``{rl}:…``), so each
multi-key command, MULTI pipeline and Lua script touches one slot, which a cluster requires.
"""

from __future__ import annotations

from typing import Any, TypeAlias

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

RedisClient: TypeAlias = Redis | RedisCluster
"""What the event backbone and the rate limiter take: either client has the commands they use."""


def redis_client(url: str, cluster: bool = False, **options: Any) -> RedisClient:
    """A client for ``url``; ``options`` are redis-py's (timeouts, ``decode_responses``, ``retry``)."""
    if cluster:
        return RedisCluster.from_url(url, **options)
    return Redis.from_url(url, **options)


def is_cluster(client: object) -> bool:
    return isinstance(client, RedisCluster)


def redis_unavailable(exc: BaseException) -> bool:
    """A lost, refused or timed-out connection to Redis/Valkey (a restart, a fail-over, a server
    still loading its data): the call may succeed if tried again, unlike a command's own error."""
    return isinstance(exc, (RedisConnectionError, RedisTimeoutError))
