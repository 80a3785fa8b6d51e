"""Prometheus metrics of the backbone (served by the service's /metrics endpoint, svckit.metrics)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

EVENTS_PUBLISHED = Counter("events_published_total", "Outbox events published to a stream", ["stream"])
EVENTS_CONSUMED = Counter(
    "events_consumed_total",
    "Deliveries finished by a consumer group; outcome: processed, duplicate (already processed, "
    "no second effect), skipped (a retry copy meant for another group), failed",
    ["stream", "group", "outcome"],
)
EVENTS_RETRIED = Counter("events_retried_total", "Deliveries scheduled for a retry", ["stream", "group"])
EVENTS_DEAD_LETTERED = Counter(
    "events_dead_lettered_total",
    "Deliveries moved to the dead-letter stream; reason: terminal, attempts_exhausted or max_deliveries",
    ["stream", "group", "reason"],
)
EVENTS_RECLAIMED = Counter(
    "events_reclaimed_total", "Pending deliveries of a dead consumer reclaimed", ["stream", "group"]
)
EVENTS_REPLAYED = Counter("events_replayed_total", "Dead letters replayed to their stream", ["stream"])
CONSUMER_LAG = Gauge(
    "events_consumer_lag", "Entries in the stream not yet delivered to the group", ["stream", "group"]
)
CONSUMER_PENDING = Gauge(
    "events_consumer_pending", "Entries delivered to the group but not acknowledged", ["stream", "group"]
)
OUTBOX_BACKLOG = Gauge("events_outbox_backlog", "Committed outbox events not yet published")
OUTBOX_BACKLOG_AGE = Gauge(
    "events_outbox_backlog_age_seconds", "Age of the oldest committed, unpublished outbox event"
)
HANDLER_SECONDS = Histogram(
    "events_handler_seconds",
    "Time to process one batch of deliveries in one transaction",
    ["stream", "group"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
