"""The event backbone on Redis Streams: transactional outbox, relay, consumer groups, retries,
dead letters and their operation. See docs/events.md.

Producer (inside the unit of work)::

    from svckit.events import outbox
    await outbox.add(conn, stream=keys.events, aggregate_id=order_id, type="payment.order.succeeded",
                     payload={"amount_minor": 315, "currency": "USD"})

Relay (a background job of the producing service)::

    Relay(engine, redis, settings).run()

Consumer (a background job of the consuming service)::

    async def handle(conn: AsyncConnection, event: Event) -> None: ...   # in the consumer's transaction
    Consumer(redis=redis, engine=engine, settings=settings, group="ledger-updater", handler=handle).run()
"""

from svckit.events import outbox
from svckit.events.config import EventsSettings, Keys
from svckit.events.consumer import BatchHandler, Consumer, Handler
from svckit.events.message import Attempt, Event
from svckit.events.policy import (
    DeadLetter,
    ErrorClass,
    Retry,
    RetryPolicy,
    TerminalError,
    TransientError,
    Waiting,
    classify,
)
from svckit.events.relay import Relay
from svckit.events.servicer import admin_registration
from svckit.events.tables import (
    create_all,
    create_outbox_in_migration,
    create_processed_events_in_migration,
    event_outbox,
    processed_events,
)

__all__ = [
    "Attempt",
    "BatchHandler",
    "Consumer",
    "DeadLetter",
    "ErrorClass",
    "Event",
    "EventsSettings",
    "Handler",
    "Keys",
    "Relay",
    "Retry",
    "RetryPolicy",
    "TerminalError",
    "TransientError",
    "Waiting",
    "admin_registration",
    "classify",
    "create_all",
    "create_outbox_in_migration",
    "create_processed_events_in_migration",
    "event_outbox",
    "outbox",
    "processed_events",
]
