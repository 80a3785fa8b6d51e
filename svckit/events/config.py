"""Settings of the event backbone: stream names, retention, retry policy, timing.

Read from ``EVENTS_*`` environment variables (``EVENTS_RETRY_MAX_ATTEMPTS=8``); the shared
``REDIS_URL`` / ``DATABASE_URL`` are read unprefixed like every service's settings, and the prefixed
variants win. Every duration carries its unit in the name.
"""

from __future__ import annotations

from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict

from svckit.config import DEFAULT_DATABASE_URL, DEFAULT_REDIS_URL, SharedEnvSettings


class EventsSettings(SharedEnvSettings):
    model_config = SettingsConfigDict(env_prefix="EVENTS_", extra="ignore", validate_default=True)

    namespace: str = "payments"
    """Hash tag of every key: ``{payments}:events``, ``{payments}:retry``, ``{payments}:dlq``.
    One tag puts them in one Redis Cluster slot, which the atomic moves (retry → stream, DLQ →
    stream) need."""
    redis_url: str = DEFAULT_REDIS_URL
    redis_cluster: bool = False
    """``redis_url`` names a node of a Redis Cluster (svckit/redisclient.py)."""
    database_url: str = DEFAULT_DATABASE_URL
    """Only used by ``python -m svckit.events relay``; services hand the relay their own engine."""

    stream_max_len: int = Field(default=1_000_000, ge=1)
    """Approximate length a live stream is trimmed to; never past an entry a group still needs."""
    stream_max_age_seconds: int = Field(default=7 * 24 * 3600, ge=1)
    """Entries older than this are trimmed, again never past an entry a group still needs."""
    trim_interval_seconds: float = Field(default=60.0, gt=0)

    retry_max_attempts: int = Field(default=8, ge=1)
    """Attempts (first delivery included) before a transient failure is dead-lettered."""
    retry_base_delay_seconds: float = Field(default=1.0, gt=0)
    retry_max_delay_seconds: float = Field(default=300.0, gt=0)
    retry_mover_interval_seconds: float = Field(default=0.25, gt=0)
    """How often due retries are moved back to the live stream (the resolution of backoff delays)."""

    consumer_batch_size: int = Field(default=200, ge=1, le=10_000)
    consumer_block_ms: int = Field(default=1000, ge=1)
    consumer_linger_seconds: float = Field(default=0.005, ge=0)
    """After a batch that was not full, wait this long before reading again, so that under load
    batches grow (one transaction and one XACK per batch) at the price of a few ms of latency."""
    claim_min_idle_seconds: float = Field(default=60.0, gt=0)
    """A pending message unacknowledged for this long belongs to a crashed consumer and is reclaimed.
    Must exceed the slowest handler, or a live consumer's message is processed twice (harmless: the
    processed-events record absorbs it, but wasted)."""
    max_deliveries: int = Field(default=10, ge=2)
    """A reclaimed delivery already handed out this often never reached an outcome (the consumer
    process dies on it, e.g. out of memory): it is dead-lettered instead of killing the next one."""
    claim_interval_seconds: float = Field(default=5.0, gt=0)
    lag_interval_seconds: float = Field(default=5.0, gt=0)

    processed_retention_hours: int = Field(default=14 * 24, ge=1)
    """How long a consumer remembers a processed event id. Must exceed the longest time a duplicate
    can arrive: the stream's max age (a reclaimed or re-published entry) plus the retry horizon."""
    processed_purge_interval_seconds: float = Field(default=3600.0, gt=0)

    relay_batch_size: int = Field(default=500, ge=1, le=10_000)
    relay_poll_interval_seconds: float = Field(default=0.5, gt=0)
    """Fallback poll; a committed outbox row normally wakes the relay at once via LISTEN/NOTIFY."""
    relay_linger_seconds: float = Field(default=0.005, ge=0)
    """After waking up for a commit, wait this long before claiming, so that concurrent commits
    share one claim and one pipeline instead of one each."""
    outbox_retention_hours: int = Field(default=24, ge=0)
    """Published outbox rows are kept this long (for audit and debugging), then purged."""

    @field_validator("namespace")
    @classmethod
    def _plain_namespace(cls, value: str) -> str:
        if not value or any(c in value for c in "{}: "):
            raise ValueError("namespace must be non-empty without '{', '}', ':' or spaces")
        return value

    @property
    def keys(self) -> Keys:
        return Keys(self.namespace)


class Keys:
    """The one naming scheme of the backbone's Redis keys (all in the ``{namespace}`` hash slot)."""

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        self.prefix = "{" + namespace + "}"

    def stream(self, name: str = "events") -> str:
        """A live stream, e.g. ``{payments}:events``."""
        return f"{self.prefix}:{name}"

    @property
    def events(self) -> str:
        return self.stream("events")

    @property
    def retry(self) -> str:
        """Sorted set of scheduled retries, scored by due time (epoch milliseconds)."""
        return f"{self.prefix}:retry"

    @property
    def dlq(self) -> str:
        """Stream of dead letters, kept until an operator replays or discards them."""
        return f"{self.prefix}:dlq"

    @property
    def discarded(self) -> str:
        """Audit stream of discarded dead letters with who/why."""
        return f"{self.prefix}:dlq:discarded"

    @property
    def streams_set(self) -> str:
        """Set of the live streams the relay has published to (what the admin lists)."""
        return f"{self.prefix}:streams"
