"""Per-API-key rate limit in Redis: GCRA (generic cell rate algorithm) in one Lua script.

GCRA keeps one number per key, the "theoretical arrival time" (TAT): each request pushes it forward by
``window / limit``; a request is refused when that would put the TAT more than one window ahead of now.
It allows a burst of the whole budget and then a steady rate, needs no cleanup (the key expires when
idle), and uses Redis's clock so every gateway replica sees the same time. Keys share the hash tag
``{ratelimit}`` so the script's single key always lives on one Redis Cluster slot.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from redis.exceptions import RedisError

from gateway import metrics
from gateway.problems import ApiProblem
from svckit.logging import get_logger
from svckit.redisclient import RedisClient

log = get_logger(__name__)

KEY_PREFIX = "{ratelimit}:apikey:"
AUTH_FAILURE_KEY_PREFIX = "{ratelimit}:authfail:"
"""Failed authentications, per client address."""

_GCRA = """
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local count = ARGV[3] == '1'
local interval = window / limit
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval
local allow_at = new_tat - window
if now < allow_at then
  return {0, 0, math.ceil(allow_at - now)}
end
if count then
  redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', math.max(1, math.ceil((new_tat - now) / 1000)))
end
return {1, math.floor((window - (new_tat - now)) / interval), 0}
"""


@dataclass(frozen=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    retry_after_seconds: int
    """Whole seconds until the next request may pass (at least 1 when refused, 0 when allowed)."""

    def headers(self) -> dict[str, str]:
        out = {"RateLimit-Limit": str(self.limit), "RateLimit-Remaining": str(self.remaining)}
        if not self.allowed:
            out["Retry-After"] = str(self.retry_after_seconds)
        return out


class RateLimiter:
    def __init__(
        self,
        client: RedisClient,
        requests: int,
        window_seconds: float,
        fail_open: bool = True,
        key_prefix: str = KEY_PREFIX,
    ) -> None:
        self._script = client.register_script(_GCRA)
        self._key_prefix = key_prefix
        self._requests = requests
        self._window_micros = max(1, round(window_seconds * 1_000_000))
        self._fail_open = fail_open
        self._last_warning = 0.0

    async def check(self, subject: str, count: bool = True) -> Decision | None:
        """Count one request of ``subject`` (with ``count=False``, only say whether one more would pass).
        None when Redis failed and the limiter fails open."""
        try:
            allowed, remaining, wait_micros = await self._script(
                keys=[self._key_prefix + subject], args=[self._requests, self._window_micros, int(count)]
            )
        except (RedisError, OSError) as exc:
            self._unavailable(exc)  # raises unless the limiter fails open
            return None
        decision = Decision(
            allowed=bool(allowed),
            limit=self._requests,
            remaining=max(0, int(remaining)),
            retry_after_seconds=max(1, math.ceil(int(wait_micros) / 1_000_000)) if not allowed else 0,
        )
        if not decision.allowed:
            metrics.RATE_LIMITED.inc()
        return decision

    def _unavailable(self, exc: Exception) -> None:
        metrics.RATE_LIMITER_ERRORS.inc()
        now = time.monotonic()
        if now - self._last_warning > 10:  # one line per 10 s is enough to page on; the metric counts all
            self._last_warning = now
            log.warning("rate limiter unavailable", error=repr(exc), fail_open=self._fail_open)
        if self._fail_open:
            return None
        raise ApiProblem(
            503,
            "RATE_LIMITER_UNAVAILABLE",
            "rate limiting is unavailable; retry shortly",
            headers={"Retry-After": "1"},
        )
